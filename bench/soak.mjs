#!/usr/bin/env node
// Soak: run an echo server in a child process, hit it with waves of connections (open, traffic,
// close cleanly / terminate / misbehave) for --minutes, sample the server's memory, print a table,
// and exit 1 if the server's RSS (or heap after GC) keeps growing.
//
//   npm run soak -- --minutes 10 [--wave 300] [--messages 20]
//
// Growth check: after a warm-up (the first 20% of samples), the median of the last third of the
// samples must stay within max(tolerance × first-third median, first-third median + slack MiB).
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as net from 'node:net';
import { once } from 'node:events';

const here = fileURLToPath(import.meta.url);
const { WebSocketServer, WebSocket } = await import(new URL('../dist/esm/index.js', import.meta.url).href);

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? Number(process.argv[i + 1]) : def;
}

// ── the server (child) ──────────────────────────────────────────────────────────────────────
if (process.argv.includes('--server')) {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', maxPayload: 1 << 20, handshakeTimeout: 2000, maxBackpressure: 4 << 20 });
  wss.on('connection', (ws) => ws.on('message', (d, isBinary) => ws.send(d, { binary: isBinary })));
  wss.on('listening', () => process.send({ type: 'port', port: wss.address().port }));
  process.on('message', (m) => {
    if (m.type === 'sample') {
      globalThis.gc?.();
      const u = process.memoryUsage();
      process.send({ type: 'sample', rss: u.rss, heap: u.heapUsed, external: u.external, clients: wss.clients.size });
    } else if (m.type === 'stop') wss.close(() => process.exit(0));
  });
} else {
  await main();
}

// ── the load (parent) ───────────────────────────────────────────────────────────────────────
async function main() {
  const minutes = arg('minutes', 10);
  const WAVE = arg('wave', 300);
  const MESSAGES = arg('messages', 20);
  const durationMs = minutes * 60_000;
  const sampleEvery = Math.max(500, Math.min(10_000, durationMs / 60));
  const child = fork(here, ['--server'], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const killChild = () => child.kill('SIGKILL');
  process.on('exit', killChild);
  const [first] = await once(child, 'message');
  const port = first.port;
  const url = `ws://127.0.0.1:${port}`;
  const pending = [];
  child.on('message', (m) => m.type === 'sample' && pending.shift()?.(m));
  const sample = () => new Promise((resolve) => { pending.push(resolve); child.send({ type: 'sample' }); });

  let conns = 0;
  let messages = 0;
  let failures = 0;
  const payloads = [Buffer.alloc(16, 1), Buffer.alloc(1024, 2), Buffer.alloc(64 * 1024, 3), 'text message é€😀'];

  /** A well-behaved client: open, MESSAGES echoes, then close (clean or terminate). */
  function client(i) {
    return new Promise((resolve) => {
      const ws = new WebSocket(url);
      let got = 0;
      const t = setTimeout(() => { failures++; ws.terminate(); }, 10_000);
      const done = () => { clearTimeout(t); conns++; resolve(); };
      ws.on('error', () => {});
      ws.on('open', () => {
        for (let k = 0; k < MESSAGES; k++) ws.send(payloads[(i + k) % payloads.length]);
        ws.ping();
      });
      ws.on('message', () => {
        messages++;
        if (++got === MESSAGES) (i % 2 ? ws.close(1000) : ws.terminate());
      });
      ws.on('close', done);
    });
  }

  /** A misbehaving peer: a protocol error, a huge length, or a half-sent frame then a reset. */
  function attacker(i) {
    return new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      const t = setTimeout(() => s.destroy(), 5000);
      s.on('error', () => {});
      s.on('connect', () => {
        const req = `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
        const bad = [
          Buffer.from([0x81, 0x01, 0x78]), // unmasked
          Buffer.from([0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4]), // 2^63 − 1
          Buffer.from([0x02, 0x85, 1, 2, 3, 4, 5, 6]), // half a fragment
        ][i % 3];
        s.write(req);
        s.write(bad);
        if (i % 3 === 2) setTimeout(() => s.resetAndDestroy(), 20);
        else s.end();
      });
      s.resume();
      s.on('close', () => { clearTimeout(t); conns++; resolve(); });
    });
  }

  const rows = [];
  const t0 = Date.now();
  let nextSample = 0;
  console.log(`soak: ${minutes} min against ${url}, waves of ${WAVE} (+${WAVE / 10 | 0} misbehaving), ${MESSAGES} messages each`);
  console.log('   t(s)    conns    msgs  fail  clients  rss(MiB)  heap(MiB)  ext(MiB)');
  while (Date.now() - t0 < durationMs) {
    const w = rows.length * 1000 + conns;
    await Promise.all([
      ...Array.from({ length: WAVE }, (_, i) => client(w + i)),
      ...Array.from({ length: WAVE / 10 | 0 }, (_, i) => attacker(w + i)),
    ]);
    if (Date.now() - t0 >= nextSample) {
      nextSample += sampleEvery;
      const m = await sample();
      const row = { t: (Date.now() - t0) / 1000, rss: m.rss / 2 ** 20, heap: m.heap / 2 ** 20, ext: m.external / 2 ** 20 };
      rows.push(row);
      console.log(`${row.t.toFixed(1).padStart(7)} ${String(conns).padStart(8)} ${String(messages).padStart(7)} ${String(failures).padStart(5)} ` +
        `${String(m.clients).padStart(8)} ${row.rss.toFixed(1).padStart(9)} ${row.heap.toFixed(1).padStart(10)} ${row.ext.toFixed(1).padStart(9)}`);
    }
  }
  child.send({ type: 'stop' });
  await Promise.race([once(child, 'exit'), new Promise((r) => setTimeout(r, 5000))]);

  // Verdict: median of the last third vs the first third, after a 20% warm-up.
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; };
  const steady = rows.slice(Math.ceil(rows.length * 0.2));
  if (steady.length < 6) {
    console.error(`soak: only ${steady.length} samples after warm-up; run longer`);
    process.exit(1);
  }
  const third = Math.floor(steady.length / 3);
  let ok = failures <= conns * 0.001;
  for (const [key, tol, slackMiB] of [['rss', 1.25, 24], ['heap', 1.25, 8]]) {
    const a = median(steady.slice(0, third).map((r) => r[key]));
    const b = median(steady.slice(-third).map((r) => r[key]));
    const limit = Math.max(a * tol, a + slackMiB);
    const pass = b <= limit;
    ok &&= pass;
    console.log(`soak: ${key} median first third ${a.toFixed(1)} MiB, last third ${b.toFixed(1)} MiB, limit ${limit.toFixed(1)} MiB: ${pass ? 'ok' : 'GROWING'}`);
  }
  console.log(`soak: ${conns} connections, ${messages} echoed messages, ${failures} client failures: ${ok ? 'PASS' : 'FAIL'}`);
  process.exit(ok ? 0 : 1);
}

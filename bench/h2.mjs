#!/usr/bin/env node
// WebSockets over HTTP/2 (RFC 8441) against HTTP/1.1 upgrades, same server process, same port:
//
//   echo   — msgs/s with 64 WebSockets: as 64 streams of ONE h2 session (TLS), as 64 HTTP/1.1
//            connections over TLS (wss:// as a browser would use it), and as 64 plain TCP ws://
//            connections; binary 16 B / 1 KiB / 64 KiB, pipelined (pre-masked frames, W in flight
//            per WebSocket, refilled at W/2), 1 s warm-up then a 3 s window; server CPU from /proc;
//   memory — server RSS and heap per idle WebSocket after gc(): 10,000 as streams on 10 h2 sessions,
//            against 10,000 plain TCP connections and (fewer: TLS handshakes are slow here) TLS ones.
//
//   npm run build && node --expose-gc bench/h2.mjs [--quick] [--only=echo|memory|memory-h2] [--window=BYTES]
//   → Markdown tables on stdout, progress on stderr
//
// Node's default h2 flow-control windows (64 KiB per stream and per connection) apply unless
// --window sets both sides' initial stream window (and 16× that per connection). Large windows with
// 64 streams × 4 × 64 KiB in flight stall in Node's http2 itself (Node 20; Node 24 resets with
// ENHANCE_YOUR_CALM), with or without wasmws on top, so the recorded figures use the defaults.
//
// Roles: this file is also the server (--role server) and the load client (--role client '<json>'),
// each in its own process, pinned to its own core where `taskset` exists. Every wait is bounded.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';

const SELF = fileURLToPath(import.meta.url);
const args = process.argv.slice(2);
const role = args[0] === '--role' ? args[1] : 'main';
const HAS_TASKSET = spawnSync('sh', ['-c', 'command -v taskset']).status === 0;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

// ── server role ─────────────────────────────────────────────────────────────────────────────

async function server(cfg) {
  const { WebSocketServer } = await import('../dist/esm/index.js');
  const key = readFileSync(join(cfg.dir, 'key.pem'));
  const cert = readFileSync(join(cfg.dir, 'cert.pem'));
  const settings = { enableConnectProtocol: true, ...(cfg.window ? { initialWindowSize: cfg.window } : {}) };
  const h2 = http2.createSecureServer({ key, cert, allowHTTP1: true, settings });
  if (cfg.window) h2.on('session', (s) => s.setLocalWindowSize(cfg.window * 16));
  // An application's page handler: Node's compatibility layer then keeps a request/response pair per stream.
  if (cfg.request) h2.on('request', (_q, r) => r.end('page'));
  const plain = http.createServer();
  const servers = [new WebSocketServer({ server: h2 }), new WebSocketServer({ server: plain })];
  for (const wss of servers) {
    wss.on('connection', (ws) => ws.on('message', (d, isBinary) => ws.send(d, { binary: isBinary })));
  }
  await new Promise((r) => h2.listen(0, '127.0.0.1', r));
  await new Promise((r) => plain.listen(0, '127.0.0.1', r));
  const conns = () => servers.reduce((n, w) => n + w.clients.size, 0);
  out({ ready: true, pid: process.pid, tlsPort: h2.address().port, plainPort: plain.address().port });
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line === 'exit') process.exit(0);
    if (line === 'conns') out({ re: 'conns', conns: conns() });
    if (line === 'mem') {
      for (let i = 0; i < 3; i++) globalThis.gc?.();
      const m = process.memoryUsage();
      out({ re: 'mem', rss: m.rss, heapUsed: m.heapUsed, external: m.external, conns: conns() });
    }
  });
  process.stdin.on('end', () => process.exit(0));
}

// ── client role ─────────────────────────────────────────────────────────────────────────────

/** Counts the frames in the server's (unmasked) byte stream without reading payloads. */
class FrameCounter {
  count = 0;
  skip = 0;
  head = null;
  push(c) {
    if (this.head) {
      c = Buffer.concat([this.head, c]);
      this.head = null;
    }
    let i = 0;
    while (i < c.length) {
      if (this.skip > 0) {
        const s = Math.min(this.skip, c.length - i);
        this.skip -= s;
        i += s;
        if (this.skip === 0) this.count++;
        continue;
      }
      const left = c.length - i;
      let len = left >= 2 ? c[i + 1] & 0x7f : -1;
      const hl = len === 126 ? 4 : len === 127 ? 10 : 2;
      if (len < 0 || left < hl) {
        this.head = Buffer.from(c.subarray(i));
        return;
      }
      if (len === 126) len = c.readUInt16BE(i + 2);
      else if (len === 127) len = Number(c.readBigUInt64BE(i + 2));
      i += hl;
      if (len === 0) this.count++;
      else this.skip = len;
    }
  }
}

/** W binary frames of `size` bytes, masked once with random keys (clients must mask, RFC 6455 §5.3). */
function maskedFrames(size, w) {
  const parts = [];
  for (let k = 0; k < w; k++) {
    const hl = size < 126 ? 2 : size < 65536 ? 4 : 10;
    const f = Buffer.alloc(hl + 4 + size);
    f[0] = 0x82;
    if (size < 126) f[1] = 0x80 | size;
    else if (size < 65536) (f[1] = 0x80 | 126), f.writeUInt16BE(size, 2);
    else (f[1] = 0x80 | 127), f.writeBigUInt64BE(BigInt(size), 2);
    const key = randomBytes(4);
    key.copy(f, hl);
    const payload = randomBytes(size);
    for (let j = 0; j < size; j++) f[hl + 4 + j] = payload[j] ^ key[j & 3];
    parts.push(f);
  }
  return Buffer.concat(parts);
}

const UPGRADE = (port) =>
  `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;

/** One HTTP/1.1 WebSocket over TCP or TLS: resolves { write, onData, close } after the 101. */
function openH1(port, secure) {
  return new Promise((resolve, reject) => {
    const s = secure
      ? tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
      : net.connect(port, '127.0.0.1');
    s.setNoDelay(true);
    const t = setTimeout(() => reject(new Error('h1 handshake timeout')), 30_000);
    s.once('error', reject);
    s.once(secure ? 'secureConnect' : 'connect', () => s.write(UPGRADE(port)));
    let head = Buffer.alloc(0);
    const onHead = (d) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      clearTimeout(t);
      s.off('data', onHead);
      if (!head.subarray(0, 12).toString().includes('101')) return reject(new Error(`no 101: ${head.subarray(0, 40)}`));
      const counter = new FrameCounter();
      if (head.length > end + 4) counter.push(head.subarray(end + 4));
      s.on('data', (c) => counter.push(c));
      resolve({ write: (b) => s.write(b), counter, close: () => s.destroy() });
    };
    s.on('data', onHead);
  });
}

async function h2Session(port, window) {
  const session = http2.connect(`https://127.0.0.1:${port}`, {
    rejectUnauthorized: false,
    settings: window ? { initialWindowSize: window } : {},
    maxSessionMemory: 1024,
  });
  session.on('error', () => {});
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no SETTINGS')), 30_000);
    session.once('remoteSettings', (s) => {
      clearTimeout(t);
      if (!s.enableConnectProtocol) reject(new Error('no SETTINGS_ENABLE_CONNECT_PROTOCOL'));
      else resolve();
    });
  });
  if (window) session.setLocalWindowSize(window * 16);
  return session;
}

function openH2(session, port) {
  return new Promise((resolve, reject) => {
    const st = session.request(
      { ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'https', ':path': '/', ':authority': `127.0.0.1:${port}`, 'sec-websocket-version': '13' },
      { endStream: false },
    );
    const t = setTimeout(() => reject(new Error('h2 CONNECT timeout')), 30_000);
    st.once('error', reject);
    st.once('response', (h) => {
      clearTimeout(t);
      if (h[':status'] !== 200) return reject(new Error(`status ${h[':status']}`));
      const counter = new FrameCounter();
      st.on('data', (c) => counter.push(c));
      resolve({ write: (b) => st.write(b), counter, close: () => st.close(http2.constants.NGHTTP2_CANCEL) });
    });
  });
}

/** Open `n` WebSockets of `transport`, at most `par` handshakes at a time. */
async function openMany(cfg, n, par = 100) {
  const sessions = [];
  if (cfg.transport === 'h2') for (let i = 0; i < (cfg.sessions ?? 1); i++) sessions.push(await h2Session(cfg.tlsPort, cfg.window));
  const conns = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      if (cfg.transport === 'h2') conns.push(await openH2(sessions[i % sessions.length], cfg.tlsPort));
      else conns.push(await openH1(cfg.transport === 'h1tls' ? cfg.tlsPort : cfg.plainPort, cfg.transport === 'h1tls'));
    }
  };
  await Promise.all(Array.from({ length: Math.min(par, n) }, worker));
  return { sessions, conns };
}

function serverCpu(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, seconds (USER_HZ = 100)
}

async function client(cfg) {
  if (cfg.mode === 'idle') {
    const { sessions, conns } = await openMany(cfg, cfg.conns, cfg.transport === 'h1tls' ? 20 : 100);
    out({ re: 'opened', n: conns.length });
    createInterface({ input: process.stdin }).on('line', (l) => {
      if (l === 'exit') process.exit(0);
    });
    process.stdin.on('end', () => process.exit(0));
    void sessions;
    return;
  }
  const { conns } = await openMany(cfg, cfg.conns);
  const w = cfg.inflight;
  const frames = maskedFrames(cfg.size, w);
  const half = frames.subarray(0, (frames.length / w) * (w / 2));
  const sent = conns.map(() => w);
  conns.forEach((c) => c.write(frames));
  // Refill each WebSocket back to W once its in-flight count drains to W/2.
  const refill = setInterval(() => {
    conns.forEach((c, i) => {
      while (sent[i] - c.counter.count <= w / 2) {
        c.write(half);
        sent[i] += w / 2;
      }
    });
  }, 0);
  const total = () => conns.reduce((n, c) => n + c.counter.count, 0);
  await sleep(cfg.warmupMs);
  const c0 = total();
  const s0 = serverCpu(cfg.serverPid);
  const u0 = process.cpuUsage();
  const t0 = performance.now();
  await sleep(cfg.measureMs);
  const secs = (performance.now() - t0) / 1000;
  const msgs = total() - c0;
  const u = process.cpuUsage(u0);
  out({ re: 'result', msgsPerSec: msgs / secs, serverCpu: (serverCpu(cfg.serverPid) - s0) / secs, clientCpu: (u.user + u.system) / 1e6 / secs });
  clearInterval(refill);
  process.exit(0);
}

// ── orchestration ───────────────────────────────────────────────────────────────────────────

function child(argv, core) {
  const cmd = ['node', '--expose-gc', SELF, ...argv];
  const full = HAS_TASKSET ? ['taskset', '-c', String(core), ...cmd] : cmd;
  const p = spawn('sh', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'sh', ...full], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = [];
  const waiters = [];
  createInterface({ input: p.stdout }).on('line', (l) => {
    let m;
    try {
      m = JSON.parse(l);
    } catch {
      return;
    }
    const i = waiters.findIndex((w) => w.pred(m));
    if (i >= 0) waiters.splice(i, 1)[0].resolve(m);
    else lines.push(m);
  });
  const next = (pred, ms) => {
    const i = lines.findIndex(pred);
    if (i >= 0) return Promise.resolve(lines.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timeout (${ms} ms) waiting on ${argv.join(' ').slice(0, 80)}`)), ms);
      waiters.push({ pred, resolve: (m) => (clearTimeout(t), resolve(m)) });
    });
  };
  const send = (l) => p.stdin.write(l + '\n');
  const stop = () => new Promise((r) => {
    if (p.exitCode !== null) return r();
    p.once('exit', r);
    try {
      send('exit');
      p.stdin.end();
    } catch {}
    setTimeout(() => p.kill('SIGKILL'), 5000).unref();
  });
  return { next, send, stop };
}

const fmt = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : n.toFixed(0));
const KiB = 1024;

async function main() {
  const quick = args.includes('--quick');
  const dir = mkdtempSync(join(tmpdir(), 'wasmws-h2bench-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', '2', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  const serverCore = cpus().length > 1 ? 1 : 0;
  const startServer = async (window, request = false) => {
    const s = child(['--role', 'server', JSON.stringify({ dir, window, request })], serverCore);
    const ready = await s.next((m) => 'ready' in m, 20_000);
    return { ...s, ...ready, ask: (cmd, ms = 60_000) => (s.send(cmd), s.next((m) => m.re === cmd, ms)) };
  };
  const runClient = async (cfg, ms = 120_000) => {
    const c = child(['--role', 'client', JSON.stringify(cfg)], 0);
    try {
      return await c.next((m) => m.re === 'result', ms);
    } finally {
      await c.stop();
    }
  };
  console.error(`# ${new Date().toISOString()} · Node ${process.version} · ${cpus().length} × ${cpus()[0]?.model} · load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);

  const only = args.find((a) => a.startsWith('--only='))?.slice(7);
  // Echo.
  const echo = [];
  const window = Number(args.find((a) => a.startsWith('--window='))?.slice(9) ?? 0) || undefined;
  let srv = await startServer(window);
  const sizes = [[16, 64], [1024, 32], [65536, 4]];
  for (const [size, inflight] of only?.startsWith('memory') ? [] : sizes) {
    const row = { size, cells: {} };
    for (const transport of ['h2', 'h1tls', 'h1']) {
      const r = await runClient({ transport, tlsPort: srv.tlsPort, plainPort: srv.plainPort, serverPid: srv.pid, conns: 64, size, inflight, window, warmupMs: quick ? 500 : 1000, measureMs: quick ? 1500 : 3000 });
      row.cells[transport] = r;
      console.error(`echo ${size} B ${transport}: ${fmt(r.msgsPerSec)} msgs/s, server CPU ${(r.serverCpu * 100).toFixed(0)}%, client ${(r.clientCpu * 100).toFixed(0)}%`);
    }
    echo.push(row);
  }
  await srv.stop();

  // Memory per idle WebSocket.
  const memory = [];
  const plans = [
    { transport: 'h2', conns: quick ? 2000 : 10_000, sessions: 10, label: 'h2 streams (10 TLS sessions)' },
    { transport: 'h2', conns: quick ? 2000 : 10_000, sessions: 10, request: true, label: "h2 streams (10 TLS sessions), server with a 'request' listener" },
    { transport: 'h1', conns: quick ? 2000 : 10_000, label: 'HTTP/1.1 over TCP (ws://)' },
    { transport: 'h1tls', conns: quick ? 500 : 2000, label: 'HTTP/1.1 over TLS (wss://)' },
  ];
  for (const plan of only === 'echo' ? [] : only === 'memory-h2' ? plans.filter((p) => p.transport === 'h2') : plans) {
    srv = await startServer(undefined, plan.request);
    const before = await srv.ask('mem');
    const c = child(['--role', 'client', JSON.stringify({ ...plan, mode: 'idle', tlsPort: srv.tlsPort, plainPort: srv.plainPort })], 0);
    const t0 = performance.now();
    await c.next((m) => m.re === 'opened', 300_000);
    const openS = (performance.now() - t0) / 1000;
    let after;
    for (let i = 0; i < 100; i++) {
      after = await srv.ask('mem');
      if (after.conns >= plan.conns) break;
      await sleep(200);
    }
    const row = { ...plan, openS, rssKiB: (after.rss - before.rss) / plan.conns / KiB, heapKiB: (after.heapUsed - before.heapUsed) / plan.conns / KiB, counted: after.conns };
    memory.push(row);
    console.error(`memory ${plan.label}: ${row.rssKiB.toFixed(2)} KiB RSS, ${row.heapKiB.toFixed(2)} KiB heap per WebSocket (${after.conns} open, ${openS.toFixed(1)} s to open)`);
    await c.stop();
    await srv.stop();
  }

  // Markdown.
  const lines = [];
  if (echo.length) lines.push('| message | h2: 64 streams, 1 session | HTTP/1.1 over TLS: 64 conns | HTTP/1.1 over TCP: 64 conns | h2 ÷ TLS | h2 ÷ TCP |');
  if (echo.length) lines.push('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const r of echo) {
    const [a, b, c] = ['h2', 'h1tls', 'h1'].map((t) => r.cells[t]);
    const cell = (x) => `${fmt(x.msgsPerSec)} (${(x.serverCpu * 100).toFixed(0)}% CPU)`;
    lines.push(`| ${r.size >= 1024 ? `${r.size / 1024} KiB` : `${r.size} B`} | ${cell(a)} | ${cell(b)} | ${cell(c)} | ${(a.msgsPerSec / b.msgsPerSec).toFixed(2)}× | ${(a.msgsPerSec / c.msgsPerSec).toFixed(2)}× |`);
  }
  if (memory.length) lines.push('', '| idle WebSockets | open | RSS per WebSocket | heap per WebSocket |', '| --- | ---: | ---: | ---: |');
  for (const m of memory) lines.push(`| ${m.label} | ${m.counted.toLocaleString('en')} | ${m.rssKiB.toFixed(2)} KiB | ${m.heapKiB.toFixed(2)} KiB |`);
  console.log(lines.join('\n'));
}

if (role === 'server') await server(JSON.parse(args[2]));
else if (role === 'client') await client(JSON.parse(args[2]));
else await main();

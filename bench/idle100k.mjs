// 100,000 idle connections in one server process, heartbeat on: RSS and heap per connection, the
// heartbeat's CPU, and the time to broadcast one message to all of them.
//
//   npm run build && node bench/idle100k.mjs [--conns 100000] [--procs 5] [--heartbeat 5000] [--window 20000]
//
// The server (this file, --role server) runs our WebSocketServer with heartbeatInterval on, fed by
// one http.Server per client process (each listening on 127.0.0.1: one client process's
// connections to one port stay within the ephemeral port range). The clients (this file, --role
// client) open raw connections, answer every ping with a pong (so the heartbeat keeps them) and
// count the data frames they get. The open-files limit is raised for every process (root may raise
// the hard limit; otherwise the run stops at the hard limit and says so). Every wait is bounded.
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { connect } from 'node:net';
import * as http from 'node:http';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const HOST = '127.0.0.1';
const self = fileURLToPath(import.meta.url);
const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const role = arg('role', 'driver');
const line = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const lifetime = setTimeout(() => process.exit(3), 20 * 60_000); // never outlive a stuck run
lifetime.unref();

async function commands(handle) {
  const rl = createInterface({ input: process.stdin });
  rl.on('close', () => process.exit(0));
  for await (const l of rl) {
    const [cmd, ...rest] = l.trim().split(' ');
    if (cmd === 'exit') process.exit(0);
    line({ re: cmd, ...(await handle(cmd, rest)) });
  }
}

// ── server ───────────────────────────────────────────────────────────────────────────────────
async function server() {
  const { WebSocketServer } = await import('../dist/esm/index.js');
  const wss = new WebSocketServer({ noServer: true, heartbeatInterval: Number(arg('heartbeat', 5000)) });
  const ports = [];
  for (let i = 0; i < Number(arg('ports', 1)); i++) {
    const s = http.createServer();
    s.on('upgrade', (req, sock, head) => wss.handleUpgrade(req, sock, head, (ws) => wss.emit('connection', ws, req)));
    await new Promise((r) => s.listen(0, HOST, 4096, r));
    ports.push(s.address().port);
  }
  const mem = async () => {
    for (let i = 0; i < 4; i++) {
      globalThis.gc?.();
      await sleep(50);
    }
    const u = process.memoryUsage();
    return { rss: u.rss, heapUsed: u.heapUsed, external: u.external, conns: wss.clients.size };
  };
  line({ ready: true, ports, pid: process.pid });
  await commands(async (cmd, rest) => {
    if (cmd === 'mem') return mem();
    if (cmd === 'conns') return { conns: wss.clients.size };
    if (cmd === 'cpu') {
      // CPU of this process over a window with nothing but the heartbeat running.
      const ms = Number(rest[0]);
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await sleep(ms);
      const c1 = process.cpuUsage(c0);
      return { cpuSeconds: (c1.user + c1.system) / 1e6, seconds: (performance.now() - t0) / 1000, conns: wss.clients.size };
    }
    if (cmd === 'broadcast') {
      const t0 = performance.now();
      const n = wss.broadcast(Buffer.alloc(16, 0x61));
      return { recipients: n, syncMs: +(performance.now() - t0).toFixed(1) };
    }
    return { error: `unknown command ${cmd}` };
  });
}

// ── client ───────────────────────────────────────────────────────────────────────────────────
async function client() {
  const port = Number(arg('port'));
  const n = Number(arg('conns'));
  const PONG = Buffer.from([0x8a, 0x80, 0, 0, 0, 0]); // masked, empty (the server's pings are empty)
  let open = 0;
  let failed = 0;
  let data = 0;
  let pongs = 0;
  const socks = [];
  const openOne = () =>
    new Promise((resolve) => {
      let upgraded = false;
      let head = '';
      const s = connect({ host: HOST, port });
      const timer = setTimeout(() => { failed++; s.destroy(); resolve(); }, 30_000);
      s.on('error', () => { if (!upgraded) { clearTimeout(timer); failed++; resolve(); } });
      s.on('connect', () => s.write(`GET / HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`));
      s.on('data', (b) => {
        if (!upgraded) {
          head += b.toString('latin1');
          const i = head.indexOf('\r\n\r\n');
          if (i < 0) return;
          upgraded = true;
          clearTimeout(timer);
          open++;
          resolve();
          b = Buffer.from(head.slice(i + 4), 'latin1');
        }
        // Server frames here are tiny and whole (pings, 16-byte messages): a light scan suffices.
        for (let p = 0; p + 1 < b.length; ) {
          const op = b[p] & 0x0f;
          const len = b[p + 1] & 0x7f;
          if (op === 0x9) { s.write(PONG); pongs++; } else if (op === 0x1 || op === 0x2) data++;
          p += 2 + len;
        }
      });
      socks.push(s);
    });
  for (let i = 0; i < n; i += 200) await Promise.all(Array.from({ length: Math.min(200, n - i) }, openOne));
  line({ re: 'opened', open, failed });
  await commands(async (cmd) => (cmd === 'count' ? { data, pongs, open } : { error: `unknown command ${cmd}` }));
}

// ── driver ───────────────────────────────────────────────────────────────────────────────────
function child(argv, limit) {
  // Raise the open-files limit (the hard one too, as root may) before exec'ing node.
  const c = spawn('sh', ['-c', `ulimit -Hn ${limit} 2>/dev/null; ulimit -n ${limit} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`, 'sh', process.execPath, ...argv], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = [];
  const waiters = [];
  createInterface({ input: c.stdout }).on('line', (l) => {
    let m;
    try { m = JSON.parse(l); } catch { return; }
    const w = waiters.findIndex((x) => x.pred(m));
    if (w >= 0) waiters.splice(w, 1)[0].resolve(m);
    else lines.push(m);
  });
  const next = (pred, ms, what) => {
    const i = lines.findIndex(pred);
    if (i >= 0) return Promise.resolve(lines.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timeout: ${what}`)), ms);
      waiters.push({ pred, resolve: (m) => { clearTimeout(t); resolve(m); } });
    });
  };
  const ask = (cmd, ms = 60_000) => { c.stdin.write(cmd + '\n'); return next((m) => m.re === cmd.split(' ')[0], ms, cmd); };
  return { c, next, ask, stop: () => { try { c.stdin.write('exit\n'); c.stdin.end(); } catch {} setTimeout(() => c.kill('SIGKILL'), 5000).unref(); } };
}

/** The open-files limit a child gets after trying to raise it to `want` (containers may refuse even root). */
function reachableLimit(want) {
  const r = spawnSync('sh', ['-c', `ulimit -Hn ${want} 2>/dev/null; ulimit -n ${want} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; ulimit -n`], { encoding: 'utf8' });
  const n = Number(r.stdout.trim());
  return Number.isFinite(n) ? n : want;
}

async function driver() {
  const asked = Number(arg('conns', 100_000));
  const limit = reachableLimit(asked + 1000);
  const conns = Math.min(asked, limit - 500);
  if (conns < asked) {
    console.error(`[idle100k] this machine lets a process open ${limit} files (RLIMIT_NOFILE; raising it failed): measuring ${conns} connections instead of ${asked}`);
  }
  const procs = Number(arg('procs', 5));
  const heartbeat = Number(arg('heartbeat', 5000));
  const cpuWindow = Number(arg('window', 20_000));
  const per = Math.ceil(conns / procs);
  const srv = child(['--expose-gc', self, '--role', 'server', '--ports', String(procs), '--heartbeat', String(heartbeat)], conns + 1000);
  const clients = [];
  try {
    const ready = await srv.next((m) => 'ready' in m, 20_000, 'server start');
    const before = await srv.ask('mem');
    const t0 = performance.now();
    for (let i = 0; i < procs; i++) {
      clients.push(child([self, '--role', 'client', '--port', String(ready.ports[i]), '--conns', String(Math.min(per, conns - i * per))], per + 1000));
    }
    const opened = await Promise.all(clients.map((c) => c.next((m) => m.re === 'opened', 600_000, 'clients open')));
    const openSeconds = (performance.now() - t0) / 1000;
    const open = opened.reduce((a, o) => a + o.open, 0);
    const after = await srv.ask('mem', 120_000);
    const n = after.conns;
    const cpu = await srv.ask(`cpu ${cpuWindow}`, cpuWindow + 60_000);
    const beats = cpu.seconds / (heartbeat / 1000);
    const dataBefore = (await Promise.all(clients.map((c) => c.ask('count')))).reduce((a, c) => a + c.data, 0);
    const tb = performance.now();
    const bc = await srv.ask('broadcast');
    let got = 0;
    const by = performance.now() + 60_000;
    while (performance.now() < by) {
      got = (await Promise.all(clients.map((c) => c.ask('count')))).reduce((a, c) => a + c.data, 0) - dataBefore;
      if (got >= bc.recipients) break;
      await sleep(20);
    }
    const deliverMs = performance.now() - tb;
    const stillOpen = (await srv.ask('conns')).conns;
    const KiB = 1024;
    const rows = [
      ['connections held (server count)', `${n.toLocaleString('en-US')} of ${conns.toLocaleString('en-US')} (clients saw ${open.toLocaleString('en-US')} upgrades, opened in ${openSeconds.toFixed(1)} s)`],
      ['RSS per connection', `${((after.rss - before.rss) / n / KiB).toFixed(2)} KiB (server RSS ${(before.rss / 2 ** 20).toFixed(0)} → ${(after.rss / 2 ** 20).toFixed(0)} MiB)`],
      ['heap per connection', `${((after.heapUsed - before.heapUsed) / n / KiB).toFixed(2)} KiB`],
      [`heartbeat CPU (every ${heartbeat} ms)`, `${((100 * cpu.cpuSeconds) / cpu.seconds).toFixed(1)}% of a core; ${((1000 * cpu.cpuSeconds) / beats).toFixed(0)} ms per beat (${n.toLocaleString('en-US')} pings and pongs)`],
      ['broadcast to all (16 B)', `${bc.syncMs} ms in broadcast(), all ${bc.recipients.toLocaleString('en-US')} delivered in ${deliverMs.toFixed(0)} ms (${got.toLocaleString('en-US')} counted)`],
      ['still open after heartbeats', stillOpen.toLocaleString('en-US')],
    ];
    console.log(`node ${process.version}, ${procs} client processes${conns < asked ? `; ${asked.toLocaleString('en-US')} asked, the open-files limit (${limit}) allows ${conns.toLocaleString('en-US')}` : ''}\n`);
    console.log('| measure | value |\n| --- | --- |\n' + rows.map((r) => `| ${r[0]} | ${r[1]} |`).join('\n'));
  } finally {
    for (const c of clients) c.stop();
    srv.stop();
  }
}

if (role === 'server') await server();
else if (role === 'client') await client();
else await driver().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });

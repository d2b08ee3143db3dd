// Bun's server.publish as the fan-out publisher, for bench/fanout.mjs (same line protocol as
// bench/fanout-server.mjs).   bun bench/bun-fanout.js
let conns = 0;
const server = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  fetch(req, srv) {
    if (srv.upgrade(req)) return undefined;
    return new Response('websocket only', { status: 400 });
  },
  websocket: {
    idleTimeout: 960,
    backpressureLimit: 1 << 30,
    open(ws) { conns++; ws.subscribe('bench'); },
    close() { conns--; },
    message() {},
  },
});
const out = (m) => process.stdout.write(JSON.stringify(m) + '\n');
const now = () => performance.timeOrigin + performance.now();
out({ ready: true, impl: 'bun', port: server.port, pid: process.pid, version: `bun ${Bun.version}` });
setTimeout(() => process.exit(3), 15 * 60_000).unref?.();
(async () => {
  for await (const line of console) {
    const [cmd, a, b, c] = line.trim().split(' ');
    if (cmd === 'conns') out({ re: 'conns', conns: server.subscriberCount ? server.subscriberCount('bench') : conns });
    else if (cmd === 'run') {
      const n = Number(a);
      const payload = 'x'.repeat(Number(b));
      const batch = Number(c);
      let sent = 0;
      out({ re: 'started', t: now() });
      const turn = () => {
        for (let i = 0; i < batch && sent < n; i++, sent++) server.publish('bench', payload);
        if (sent < n) setImmediate(turn);
        else out({ re: 'published', t: now() });
      };
      turn();
    } else if (cmd === 'exit') process.exit(0);
  }
  process.exit(0);
})();

// Bun's built-in WebSocket server as an echo server, for bench/echo-server.mjs --impl bun.
//   bun bench/bun-echo.js PORT DEFLATE(0|1)
// Same line protocol as echo-server.mjs: a JSON ready line, then `mem` / `conns` / `exit` on stdin.
const port = Number(process.argv[2] ?? 0);
const deflate = process.argv[3] === '1';
let conns = 0;

const server = Bun.serve({
  hostname: '127.0.0.1',
  port,
  fetch(req, srv) {
    if (srv.upgrade(req)) return undefined;
    return new Response('websocket only', { status: 400 });
  },
  websocket: {
    perMessageDeflate: deflate,
    idleTimeout: 960, // seconds (the maximum); the memory suite holds idle connections
    maxPayloadLength: 100 * 1024 * 1024,
    open() { conns++; },
    close() { conns--; },
    message(ws, message) { ws.send(message); }, // string → text, Buffer → binary
  },
});

process.stdout.write(JSON.stringify({ ready: true, impl: 'bun', port: server.port, pid: process.pid, version: `bun ${Bun.version}`, deflate }) + '\n');
setTimeout(() => process.exit(3), 30 * 60_000).unref?.();

(async () => {
  for await (const line of console) {
    const cmd = line.trim();
    if (cmd === 'mem') {
      for (let i = 0; i < 4; i++) { Bun.gc(true); await Bun.sleep(40); }
      const u = process.memoryUsage();
      process.stdout.write(JSON.stringify({ re: 'mem', rss: u.rss, heapUsed: u.heapUsed, heapTotal: u.heapTotal, external: u.external, arrayBuffers: u.arrayBuffers ?? 0, conns, gc: true }) + '\n');
    } else if (cmd === 'conns') process.stdout.write(JSON.stringify({ re: 'conns', conns }) + '\n');
    else if (cmd === 'exit') process.exit(0);
  }
  process.exit(0); // stdin closed: the parent is gone
})();

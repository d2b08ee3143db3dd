#!/usr/bin/env node
// A publisher server for bench/fanout.mjs. Every connection on /?t=bench (or a socket.io socket)
// is a subscriber of "bench"; stdin `run <count> <size> <batch>` publishes <count> text messages of
// <size> bytes, <batch> per event-loop turn, and prints {"re":"started","t":…} then {"re":"published"}.
// `conns` → {"re":"conns","conns":n}; `exit` quits.
//   --impl wasmws          wss.publish (frame once, one write per socket per turn)
//   --impl ws              ws: for (const c of clients) c.send(data)
//   --impl wasmws-redis    wasmws with a RedisBroker (--redis URL); subscribers may be on another process
//   --impl socketio        socket.io with @socket.io/redis-adapter (--redis URL): io.to('bench').emit('m', data)
import { createInterface } from 'node:readline';
import { once } from 'node:events';

const arg = (n, d) => {
  const i = process.argv.indexOf(`--${n}`);
  return i > 0 ? process.argv[i + 1] : d;
};
const impl = arg('impl', 'wasmws');
const redisUrl = arg('redis', '');
const out = (m) => process.stdout.write(JSON.stringify(m) + '\n');
const now = () => performance.timeOrigin + performance.now();
setTimeout(() => process.exit(3), 15 * 60_000).unref();

let publish; // (payload: string) => void
let count = () => 0;
let version = '';
let port = 0;

if (impl === 'wasmws' || impl === 'wasmws-redis') {
  const { WebSocketServer, RedisBroker } = await import('../dist/esm/index.js');
  let broker;
  if (impl === 'wasmws-redis') {
    const { createClient } = await import('redis');
    const client = createClient({ url: redisUrl });
    await client.connect();
    broker = new RedisBroker({ client, maxQueue: 1_000_000, maxQueueBytes: 1 << 30 });
    broker.on('gap', (t, o, missed) => out({ re: 'gap', missed }));
    await broker.ready;
  }
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', broker, maxBackpressure: 1 << 30 });
  await once(wss, 'listening');
  wss.on('connection', (ws) => ws.subscribe('bench'));
  port = wss.address().port;
  publish = (p) => wss.publish('bench', p);
  count = () => wss.subscriberCount('bench');
  version = 'wasmws (this commit)';
} else if (impl === 'ws') {
  const { WebSocketServer } = await import('ws');
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await once(wss, 'listening');
  port = wss.address().port;
  publish = (p) => {
    for (const c of wss.clients) c.send(p);
  };
  count = () => wss.clients.size;
  version = `ws ${(await import('ws/package.json', { with: { type: 'json' } })).default.version}`;
} else if (impl === 'socketio') {
  const http = await import('node:http');
  const { Server } = await import('socket.io');
  const { createAdapter } = await import('@socket.io/redis-adapter');
  const { createClient } = await import('redis');
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const server = http.createServer();
  const io = new Server(server, { adapter: createAdapter(pub, sub), transports: ['websocket'], serveClient: false, perMessageDeflate: false, pingInterval: 600_000, pingTimeout: 600_000 });
  io.on('connection', (s) => s.join('bench'));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  port = server.address().port;
  publish = (p) => io.to('bench').emit('m', p);
  count = () => io.of('/').adapter.rooms.get('bench')?.size ?? 0;
  version = `socket.io ${(await import('socket.io/package.json', { with: { type: 'json' } })).default.version} + @socket.io/redis-adapter`;
} else throw new Error(`unknown impl ${impl}`);

out({ ready: true, impl, port, pid: process.pid, version });

createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, a, b, c] = line.trim().split(' ');
  if (cmd === 'conns') out({ re: 'conns', conns: count() });
  else if (cmd === 'run') {
    const n = Number(a);
    const payload = 'x'.repeat(Number(b));
    const batch = Number(c);
    let sent = 0;
    out({ re: 'started', t: now() });
    const turn = () => {
      for (let i = 0; i < batch && sent < n; i++, sent++) publish(payload);
      if (sent < n) setImmediate(turn);
      else out({ re: 'published', t: now() });
    };
    turn();
  } else if (cmd === 'exit') process.exit(0);
});
process.stdin.on('end', () => process.exit(0));

#!/usr/bin/env node
// Subscribers for the fan-out and topic-memory benches: N raw-socket WebSocket connections that
// only count received bytes (server frames are unmasked; every delivered frame has a known size,
// so bytes / frame size = deliveries). Nothing is parsed or copied; reads land in one buffer.
//
//   node bench/fanout-client.mjs '{"port":8080,"path":"/","conns":1000}'   ("socketio":true: engine.io v4
//   over WebSocket; the client sends the namespace CONNECT packet "40" after the upgrade)
//   stdout: {"re":"opened","conns":N}           once every connection is upgraded
//   stdin:  "target <bytes>"  → {"re":"reached","bytes":…,"t":<epoch ms, fractional>} once the total reaches it
//           "count"           → {"re":"count","bytes":…}
//           "reset"           → counts from 0 again
//           "exit"            → close everything and exit
// Bounded: connect timeout 15 s, a hard lifetime of 10 minutes.
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

const o = JSON.parse(process.argv[2]);
const READ = Buffer.allocUnsafe(256 * 1024);
const sockets = [];
let bytes = 0;
let target = Infinity;
const now = () => performance.timeOrigin + performance.now();
const out = (m) => process.stdout.write(JSON.stringify(m) + '\n');
setTimeout(() => process.exit(3), 10 * 60_000).unref();

function check() {
  if (bytes >= target) {
    target = Infinity;
    out({ re: 'reached', bytes, t: now() });
  }
}

function open() {
  return new Promise((resolve, reject) => {
    let upgraded = false;
    let head = '';
    const s = connect({
      port: o.port,
      host: '127.0.0.1',
      onread: {
        buffer: READ,
        callback(n) {
          if (upgraded) {
            bytes += n;
            check();
            return;
          }
          head += READ.toString('latin1', 0, n);
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          if (!head.startsWith('HTTP/1.1 101')) return reject(new Error(head.split('\r\n')[0]));
          upgraded = true;
          // socket.io: CONNECT to the default namespace (a masked text frame "40", zero mask key).
          if (o.socketio) s.write(Buffer.from([0x81, 0x82, 0, 0, 0, 0, 0x34, 0x30]));
          bytes += head.length - end - 4;
          check();
          resolve(s);
        },
      },
    });
    s.setNoDelay(true);
    s.on('error', reject);
    s.setTimeout(15_000, () => (upgraded ? undefined : reject(new Error('connect timeout'))));
    s.on('connect', () => {
      s.write(`GET ${o.path ?? '/'} HTTP/1.1\r\nHost: 127.0.0.1:${o.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    sockets.push(s);
  });
}

try {
  for (let i = 0; i < o.conns; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, o.conns - i) }, open));
  }
  for (const s of sockets) s.setTimeout(0);
  out({ re: 'opened', conns: sockets.length });
} catch (err) {
  out({ re: 'error', error: err.message });
  process.exit(1);
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, arg] = line.trim().split(' ');
  if (cmd === 'target') {
    target = Number(arg);
    check();
  } else if (cmd === 'count') out({ re: 'count', bytes });
  else if (cmd === 'reset') bytes = 0;
  else if (cmd === 'exit') {
    for (const s of sockets) s.destroy();
    process.exit(0);
  }
});
process.stdin.on('end', () => process.exit(0));

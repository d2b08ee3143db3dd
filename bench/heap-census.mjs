// Heap census of N idle upgraded connections, byte by byte: a V8 heap snapshot of the server
// process before and after N raw clients (another process) upgrade, objects grouped by constructor,
// bytes per connection (rows of at least 4 B). What an idle connection holds, ours against ws's:
//
//   npm run build && node --expose-gc bench/heap-census.mjs [dist/esm/index.js | node_modules/ws/wrapper.mjs] [N]
import v8 from 'node:v8';
import net from 'node:net';
import { readFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
const lib = await import(pathToFileURL(resolve(process.argv[2] ?? new URL('../dist/esm/index.js', import.meta.url).pathname)).href);
const N = Number(process.argv[3] ?? 2000);
const wss = new lib.WebSocketServer({ port: 0, host: '127.0.0.1' });
await new Promise((r) => wss.on('listening', r));
const port = wss.address().port;
function census() {
  global.gc?.();
  const file = v8.writeHeapSnapshot(join(tmpdir(), `wasmws-census-${process.pid}.heapsnapshot`));
  const snap = JSON.parse(readFileSync(file, 'utf8'));
  unlinkSync(file);
  const f = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const iType = f.indexOf('type'), iName = f.indexOf('name'), iSize = f.indexOf('self_size');
  const by = new Map();
  const nodes = snap.nodes, strings = snap.strings, w = f.length;
  for (let i = 0; i < nodes.length; i += w) {
    const t = types[nodes[i + iType]];
    const name = t === 'object' || t === 'closure' ? strings[nodes[i + iName]] : `(${t})`;
    const key = `${t}:${name}`;
    const e = by.get(key) ?? { n: 0, size: 0 };
    e.n++; e.size += nodes[i + iSize];
    by.set(key, e);
  }
  return by;
}
const before = census();
// N raw clients in another process
import { spawn } from 'node:child_process';
const child = spawn(process.execPath, ['-e', `
const net = require('net'); const socks = [];
for (let i = 0; i < ${N}; i++) { const s = net.connect(${port}, '127.0.0.1');
  s.write('GET / HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n');
  s.on('data', () => {}); s.on('error', () => {}); socks.push(s); }
setInterval(() => {}, 1000);`], { stdio: 'inherit' });
while (wss.clients.size < N) await new Promise((r) => setTimeout(r, 50));
await new Promise((r) => setTimeout(r, 300));
// The client sockets live in this process too: count the server side by subtracting a second census
// of client-only? Simpler: report all and note clients are plain net.Sockets.
const after = census();
const rows = [];
for (const [k, e] of after) {
  const b = before.get(k) ?? { n: 0, size: 0 };
  const dn = e.n - b.n, ds = e.size - b.size;
  if (ds / N >= 4) rows.push([k, (dn / N).toFixed(2), (ds / N).toFixed(1)]);
}
rows.sort((a, b) => b[2] - a[2]);
let total = 0;
for (const r of rows) total += +r[2];
console.log(`N=${N} total per connection (server side only): ${total.toFixed(0)} B`);
for (const r of rows.slice(0, 45)) console.log(r.join('\t'));
child.kill();
process.exit(0);

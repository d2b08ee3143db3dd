// Heap census of N idle upgraded connections, byte by byte: a V8 heap snapshot of the server
// process before and after N raw clients (another process) upgrade, objects grouped by constructor,
// bytes per connection (rows of at least 4 B). What an idle connection holds, ours against ws's:
//
//   npm run build && node --expose-gc bench/heap-census.mjs [dist/esm/index.js | node_modules/ws/wrapper.mjs] [N] [--owners]
//
// --owners: the unnamed rows (internal arrays, hidden objects, plain Objects and Arrays, closures,
// strings) attributed to the named object that holds them (the nearest retainer that is an
// instance of a class, and the property path to it), for the objects created by the connections.
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
const OWNERS = process.argv.includes('--owners');
/** The first snapshot's file, kept for --owners: its ids are read only after the second snapshot is taken, so they are not in it. */
let firstFile = null;
let idsBefore = null;
function census() {
  global.gc?.();
  const file = v8.writeHeapSnapshot(join(tmpdir(), `wasmws-census-${process.pid}-${census.n = (census.n ?? 0) + 1}.heapsnapshot`));
  const snap = JSON.parse(readFileSync(file, 'utf8'));
  if (OWNERS && firstFile) {
    idsBefore = idsOf(JSON.parse(readFileSync(firstFile, 'utf8')));
    unlinkSync(firstFile);
    census.owners = owners(snap);
  }
  if (OWNERS && !firstFile) firstFile = file;
  else unlinkSync(file);
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
function idsOf(snap) {
  const f = snap.snapshot.meta.node_fields, w = f.length, iId = f.indexOf('id');
  // sorted, searched by bisection: a Set of this size would itself show up in the second census
  const ids = new Float64Array(snap.nodes.length / w);
  for (let i = iId, j = 0; i < snap.nodes.length; i += w) ids[j++] = snap.nodes[i];
  return ids.sort();
}
function hasId(sorted, id) {
  let lo = 0, hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] === id) return true;
    if (sorted[mid] < id) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}
/** Bytes of the new unnamed nodes (not in the first census), by the named object holding them. */
function owners(snap) {
  const f = snap.snapshot.meta.node_fields, ef = snap.snapshot.meta.edge_fields;
  const types = snap.snapshot.meta.node_types[0], etypes = snap.snapshot.meta.edge_types[0];
  const w = f.length, ew = ef.length;
  const iType = f.indexOf('type'), iName = f.indexOf('name'), iSize = f.indexOf('self_size'), iId = f.indexOf('id'), iEc = f.indexOf('edge_count');
  const eType = ef.indexOf('type'), eName = ef.indexOf('name_or_index'), eTo = ef.indexOf('to_node');
  const { nodes, edges, strings } = snap;
  const count = nodes.length / w;
  const first = new Int32Array(count).fill(-1); // first strong retainer: node index
  const firstEdge = new Int32Array(count).fill(-1);
  let e = 0;
  for (let n = 0; n < count; n++) {
    for (let k = nodes[n * w + iEc]; k > 0; k--, e += ew) {
      const t = etypes[edges[e + eType]];
      if (t === 'weak' || t === 'shortcut') continue;
      const to = edges[e + eTo] / w;
      if (first[to] === -1) { first[to] = n; firstEdge[to] = e; }
    }
  }
  const named = (n) => { const t = types[nodes[n * w + iType]]; const name = strings[nodes[n * w + iName]]; return t === 'object' && name !== 'Object' && name !== 'Array' && name !== 'system / Context' ? name : null; };
  const edgeLabel = (e) => { const t = etypes[edges[e + eType]]; return t === 'element' || t === 'hidden' ? `[${t}]` : String(t === 'property' || t === 'internal' || t === 'context' ? strings[edges[e + eName]] : edges[e + eName]); };
  const by = new Map();
  for (let n = 0; n < count; n++) {
    if (hasId(idsBefore, nodes[n * w + iId])) continue;
    if (named(n)) continue;
    const t = types[nodes[n * w + iType]];
    let path = [], cur = n, owner = null;
    for (let d = 0; d < 4 && first[cur] !== -1; d++) {
      path.unshift(edgeLabel(firstEdge[cur]));
      cur = first[cur];
      owner = named(cur);
      if (owner) break;
    }
    const key = `${owner ?? '?'}.${path.join('.')} (${t === 'object' || t === 'closure' ? strings[nodes[n * w + iName]] : t})`;
    const v = by.get(key) ?? 0;
    by.set(key, v + nodes[n * w + iSize]);
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
if (OWNERS) {
  console.log('\nunnamed nodes created by the connections, by holder (B per connection, ≥ 4):');
  const o = [...census.owners].map(([k, v]) => [k, v / N]).filter(([, v]) => v >= 4).sort((a, b) => b[1] - a[1]);
  for (const [k, v] of o.slice(0, 60)) console.log(`${v.toFixed(1)}\t${k}`);
}
child.kill();
process.exit(0);

#!/usr/bin/env node
// Memory of subscriptions: 10,000 open connections (a subscriber process, bench/fanout-client.mjs),
// then every one subscribed to 10 topics (100 topics in all, 1,000 subscribers each). Reports the
// server's heap and RSS growth after gc, per subscription and per socket, then closes them all and
// checks that the topic tables are empty again.
//
//   npm run build && node --expose-gc bench/topics-memory.mjs [--conns 10000] [--topics 10]
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from '../dist/esm/index.js';

const arg = (name, d) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const CONNS = arg('conns', 10_000);
const TOPICS = arg('topics', 10);
if (typeof gc !== 'function') throw new Error('run with node --expose-gc');
const mem = () => {
  for (let i = 0; i < 4; i++) gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
await once(wss, 'listening');
const port = wss.address().port;
const client = spawn('sh', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'sh', process.execPath,
  fileURLToPath(new URL('./fanout-client.mjs', import.meta.url)), JSON.stringify({ port, conns: CONNS })], { stdio: ['pipe', 'pipe', 'inherit'] });
const lines = createInterface({ input: client.stdout });
const opened = await new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error('clients did not open in 120 s')), 120_000);
  lines.once('line', (l) => { clearTimeout(t); resolve(JSON.parse(l)); });
});
if (opened.re !== 'opened') throw new Error(opened.error);
for (let i = 0; i < 300 && wss.clients.size < CONNS; i++) await sleep(100);
await sleep(500);
const before = mem();
let k = 0;
for (const ws of wss.clients) {
  for (let t = 0; t < TOPICS; t++) ws.subscribe(`topic-${(k + t) % 100}`);
  k++;
}
const after = mem();
const subs = CONNS * TOPICS;
const perSub = (after.heap - before.heap) / subs;
const row = {
  conns: wss.clients.size,
  topicsPerSocket: TOPICS,
  subscriptions: subs,
  heapMiB: +((after.heap - before.heap) / 2 ** 20).toFixed(2),
  rssMiB: +((after.rss - before.rss) / 2 ** 20).toFixed(2),
  heapBytesPerSubscription: Math.round(perSub),
  heapBytesPerSocket: Math.round(perSub * TOPICS),
  node: process.version,
};
console.log(JSON.stringify(row));
client.stdin.write('exit\n');
for (let i = 0; i < 300 && wss.clients.size > 0; i++) await sleep(100);
console.log(JSON.stringify({ openAfterClose: wss.clients.size, topicsAfterClose: wss.topicCount }));
await new Promise((r) => wss.close(r));
process.exit(0);

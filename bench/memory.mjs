// Memory suite: server RSS and heap per idle connection with N connections open (10,000 in a full
// run), our server vs ws (and Bun where installed); with permessage-deflate on as well.
// `export async function runMemory({ quick, log })` → { rows, markdown }.
//
// Method: the server runs in its own process (bench/echo-server.mjs, started with --expose-gc).
// It reports process.memoryUsage() after gc() (Bun: Bun.gc(true)) with no connection (baseline),
// then again once the load client (bench/loadgen.mjs idle mode, another process) holds N upgraded
// connections and the server counts N clients. Per connection = (after − baseline) / N.
// "deflate on, after 1 msg": permessage-deflate negotiated and one compressed message echoed on
// every connection, so the server's inflate and deflate contexts exist (ws and we create them
// lazily, on first use).
import { startServer, openIdle, fileLimit, sleep, machine, mdTable, fmtRatio } from './harness.mjs';
import { fileURLToPath } from 'node:url';

const KiB = 1024;

export function memoryPlan(quick) {
  return {
    conns: quick ? 2000 : 10_000,
    // With deflate on, a Node server holds ~250 KiB of zlib state per connection: 2,000 connections
    // (≈ 0.5 GB) show it as well as 10,000 would, without taking 2.5 GB of a shared machine.
    deflateConns: 2000,
    /** Idle time before the settled measurement (connections without deflate). */
    settleMs: quick ? 5000 : 20_000,
    modes: [
      { impl: 'wasmws', deflate: false },
      { impl: 'ws', deflate: false },
      { impl: 'bun', deflate: false },
      { impl: 'wasmws', deflate: true, touch: true },
      { impl: 'ws', deflate: true, touch: true },
      { impl: 'bun', deflate: true, touch: true },
    ],
  };
}

async function one(mode, n, log, settleMs) {
  const label = mode.deflate ? 'deflate on, after 1 msg each way' : 'off, idle';
  const base = { impl: mode.impl, compression: label, conns: n };
  let server;
  try {
    server = await startServer(mode.impl, { deflate: mode.deflate, pin: false });
  } catch (err) {
    return { ...base, note: err.notInstalled ? 'Bun: not installed' : `failed: ${err.message}` };
  }
  let client;
  try {
    const before = await server.ask('mem');
    // Spread over several client processes when one cannot hold n sockets.
    const perProc = Math.max(1, Math.min(n, fileLimit() - 200));
    client = [];
    const t0 = performance.now();
    for (let left = n; left > 0; left -= perProc) {
      client.push(await openIdle({ port: server.port, conns: Math.min(perProc, left), deflate: mode.deflate, touch: !!mode.touch, text: true, size: 2 * KiB }, 120_000));
    }
    const openSeconds = (performance.now() - t0) / 1000;
    let conns = 0;
    const by = performance.now() + 15_000;
    while ((conns = (await server.ask('conns')).conns) < n && performance.now() < by) await sleep(100);
    const after = await server.ask('mem', 60_000);
    if (after.conns !== n) throw new Error(`server counts ${after.conns} connections, expected ${n}`);
    const per = (k) => +((after[k] - before[k]) / n / KiB).toFixed(2);
    const row = {
      ...base,
      rssKiBPerConn: per('rss'),
      heapUsedKiBPerConn: per('heapUsed'),
      externalKiBPerConn: per('external'),
      baselineRssMiB: +(before.rss / KiB / KiB).toFixed(1),
      rssMiB: +(after.rss / KiB / KiB).toFixed(1),
      openSeconds: +openSeconds.toFixed(1),
      touched: client.reduce((a, c) => a + c.opened.touched, 0),
      gc: after.gc,
      version: server.info.version,
    };
    if (!mode.deflate) {
      // Settled: the same connections after the server has been idle (see bench/idle-settled.mjs:
      // right after a burst, RSS still holds V8's grown young generation, which no connection holds).
      await sleep(settleMs);
      const settled = await server.ask('mem', 60_000);
      row.rssSettledKiBPerConn = +((settled.rss - before.rss) / n / KiB).toFixed(2);
      row.heapSettledKiBPerConn = +((settled.heapUsed - before.heapUsed) / n / KiB).toFixed(2);
      row.settleSeconds = settleMs / 1000;
    }
    if (mode.touch && row.touched < n) row.note = `only ${row.touched} of ${n} connections echoed their message`;
    log(`memory: ${mode.impl.padEnd(12)} ${label.padEnd(32)} ${n} conns: RSS ${row.rssKiBPerConn} KiB/conn, heap ${row.heapUsedKiBPerConn} KiB/conn, external ${row.externalKiBPerConn} KiB/conn (opened in ${row.openSeconds} s)`);
    return row;
  } catch (err) {
    log(`memory: ${mode.impl} ${label}: ${err.message}`);
    return { ...base, note: `failed: ${err.message}` };
  } finally {
    for (const c of client ?? []) await c.stop();
    await server.stop();
  }
}

export async function runMemory({ quick = false, log = () => {} } = {}) {
  const p = memoryPlan(quick);
  const mach = machine();
  const rows = [];
  for (const mode of p.modes) rows.push(await one(mode, mode.deflate ? p.deflateConns : p.conns, log, p.settleMs));
  for (const r of rows) {
    const ws = rows.find((x) => x.impl === 'ws' && x.compression === r.compression);
    r.rssRatioToWs = r.rssKiBPerConn != null && ws?.rssKiBPerConn ? +(r.rssKiBPerConn / ws.rssKiBPerConn).toFixed(3) : null;
    r.rssSettledRatioToWs = r.rssSettledKiBPerConn != null && ws?.rssSettledKiBPerConn ? +(r.rssSettledKiBPerConn / ws.rssSettledKiBPerConn).toFixed(3) : null;
  }
  return { plan: p, machine: mach, rows, markdown: memoryMarkdown({ plan: p, rows }) };
}

export function memoryMarkdown({ plan, rows }) {
  const md = [`### memory per idle connection — ${plan.conns.toLocaleString('en-US')} connections open (${plan.deflateConns.toLocaleString('en-US')} with deflate), server process after gc (KiB per connection)`, ''];
  md.push(mdTable(['server', 'compression', 'connections', 'RSS', 'heap used', 'external', 'RSS ratio to ws', 'server RSS total'], rows.map((r) =>
    r.rssKiBPerConn == null
      ? [r.impl, r.compression, String(r.conns), r.note === 'Bun: not installed' ? 'not installed' : (r.note ?? '–'), '', '', '', '']
      : [r.impl, r.compression, r.conns.toLocaleString('en-US'), r.rssKiBPerConn.toFixed(2), r.heapUsedKiBPerConn.toFixed(2), r.externalKiBPerConn.toFixed(2), fmtRatio(r.rssRatioToWs), `${r.baselineRssMiB} → ${r.rssMiB} MiB`])), '');
  const settled = rows.filter((r) => r.rssSettledKiBPerConn != null);
  if (settled.length) {
    md.push(`Settled, the same connections after ${settled[0].settleSeconds} s idle (V8 gives back its young generation, grown by the burst of upgrades):`, '');
    md.push(mdTable(['server', 'connections', 'RSS settled', 'heap used settled', 'RSS settled ratio to ws'], settled.map((r) =>
      [r.impl, r.conns.toLocaleString('en-US'), r.rssSettledKiBPerConn.toFixed(2), r.heapSettledKiBPerConn.toFixed(2), fmtRatio(r.rssSettledRatioToWs)])), '');
  }
  md.push('Per connection = (after − baseline) / N, from process.memoryUsage() after gc() in the server process; the clients are other processes. ' +
    'Bun reports its JavaScriptCore heap (heap used) and RSS; its native per-socket state shows in RSS only.');
  return md.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  runMemory({ quick: process.argv.includes('--quick'), log: (m) => console.error(m) }).then((r) => {
    console.log(r.markdown);
    process.exit(0);
  }, (err) => { console.error(err); process.exit(1); });
}

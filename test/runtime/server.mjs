// Our server with our client and with the runtime's own WebSocket client: echo 0 B – 16 MiB,
// subprotocols, close codes and reasons both ways, ping/pong, maxPayload → 1009, permessage-deflate.
import { Buffer } from 'node:buffer';
import * as net from 'node:net';
import process from 'node:process';
import { test, skip, note, withTimeout, eq, ok, bytesEq, deepEq, asciiText, randomBytes, compressibleText, sizeName, KiB, MiB, RUNTIME } from './harness.mjs';
import { startServer, openOurs, openRuntime, RuntimeWebSocket } from './peers.mjs';

const SIZES = [0, 1, 125, 126, 64 * KiB, MiB, 16 * MiB];

let echoServer;
const sharedEcho = () => (echoServer ??= startServer());

/** The client kinds this runtime has. */
const CLIENTS = [
  ['our client', (url, protocols, opts) => openOurs(url, protocols, { perMessageDeflate: false, ...opts })],
  ['runtime client', (url, protocols) => openRuntime(url, protocols)],
];

function noRuntimeClient() {
  if (RuntimeWebSocket) return undefined;
  return `${RUNTIME.runtime} ${RUNTIME.version} has no global WebSocket client` +
    (RUNTIME.runtime === 'node' ? ' (Node < 22 ships it only behind --experimental-websocket)' : '');
}

async function expectMessage(peer, expected, what) {
  const m = await peer.messages.next(expected.length >= 16 * MiB ? 20_000 : 5000);
  if (typeof expected === 'string') {
    ok('text' in m, `${what}: expected a text message, got ${Object.keys(m).join(',')}`);
    eq(m.text.length, expected.length, `${what}: text length`);
    ok(m.text === expected, `${what}: text differs`);
  } else {
    ok('binary' in m, `${what}: expected a binary message, got ${'text' in m ? 'text' : JSON.stringify(m)}`);
    bytesEq(m.binary, expected, `${what}`);
  }
  return m;
}

export function serverTests() {
  for (const [kind, open] of CLIENTS) {
    const missing = kind === 'runtime client' ? noRuntimeClient() : undefined;
    const t = (title, fn, opts) => {
      if (missing) skip(`${kind}: ${title}`, missing);
      else test(`${kind}: ${title}`, fn, opts);
    };

    for (const type of ['text', 'binary']) {
      for (const n of SIZES) {
        t(`echo ${type} ${sizeName(n)}`, async () => {
          const { url } = await sharedEcho();
          const peer = await open(url);
          try {
            const data = type === 'text' ? asciiText(n + 11, n) : randomBytes(n + 13, n);
            peer.send(data);
            await expectMessage(peer, data, `${type} ${sizeName(n)}`);
          } finally {
            peer.close(1000);
          }
        }, { timeout: n >= 16 * MiB ? 30_000 : 10_000 });
      }
    }

    t('echo UTF-8 text (2-, 3- and 4-byte sequences) and several messages in order', async () => {
      const { url } = await sharedEcho();
      const peer = await open(url);
      try {
        const msgs = ['héllo', '€ 100', '😀 smile', 'ascii', '', 'ünïcödé'.repeat(5000)];
        for (const m of msgs) peer.send(m);
        for (const m of msgs) await expectMessage(peer, m, `text ${JSON.stringify(m.slice(0, 10))}`);
      } finally {
        peer.close(1000);
      }
    });

    t('subprotocol: the server selects one of the offered protocols and both sides agree', async () => {
      const srv = await startServer({ handleProtocols: (set) => (set.has('chat') ? 'chat' : false) });
      try {
        const peer = await open(srv.url, ['superchat', 'chat']);
        const conn = await srv.conns.next();
        eq(peer.protocol, 'chat', 'client protocol');
        eq(conn.protocol, 'chat', 'server protocol');
        peer.send('proto');
        await expectMessage(peer, 'proto', 'echo after subprotocol');
        peer.close(1000);
        // No protocol offered: none selected.
        const plain = await open(srv.url);
        eq(plain.protocol, '', 'protocol when none offered');
        plain.close(1000);
      } finally {
        await srv.stop();
      }
    });

    for (const [code, reason] of [[1000, 'normal bye'], [4000, 'app-specific bye']]) {
      t(`close ${code} with a reason from the client: the server sees it, and the reply echoes code and reason`, async () => {
        const srv = await startServer();
        try {
          const peer = await open(srv.url);
          const conn = await srv.conns.next();
          peer.close(code, reason);
          const atServer = await conn.waitClosed();
          deepEq(atServer, { code, reason }, 'close seen by the server');
          const atClient = await peer.waitClosed();
          deepEq({ code: atClient.code, reason: atClient.reason }, { code, reason }, 'close reply seen by the client (RFC 6455 §5.5.1: echo)');
        } finally {
          await srv.stop();
        }
      });
      t(`close ${code} with a reason from the server: the client sees it, the server gets the code back`, async () => {
        const srv = await startServer();
        try {
          const peer = await open(srv.url);
          const conn = await srv.conns.next();
          conn.close(code, reason);
          const atClient = await peer.waitClosed();
          deepEq({ code: atClient.code, reason: atClient.reason }, { code, reason }, 'close seen by the client');
          const atServer = await conn.waitClosed();
          eq(atServer.code, code, 'code of the client\'s close reply, seen by the server');
          if (kind === 'our client') eq(atServer.reason, reason, 'reason of our client\'s close reply');
        } finally {
          await srv.stop();
        }
      });
    }

    t('maxPayload: a message one byte over the server\'s limit closes with 1009 on both sides', async () => {
      const srv = await startServer({ maxPayload: 1024 });
      try {
        const peer = await open(srv.url);
        const conn = await srv.conns.next();
        peer.send(randomBytes(1, 1024));
        await expectMessage(peer, randomBytes(1, 1024), 'a message at the limit');
        peer.send(randomBytes(2, 1025));
        const atClient = await peer.waitClosed();
        eq(atClient.code, 1009, 'close code seen by the client');
        eq((await conn.waitClosed()).code, 1009, 'close code at the server');
      } finally {
        await srv.stop();
      }
    });

    t('permessage-deflate server: echo compressible text up to 1.5 MiB and binary', async () => {
      const srv = await startServer({ perMessageDeflate: true });
      try {
        const peer = await open(srv.url, undefined, { perMessageDeflate: true });
        const conn = await srv.conns.next();
        const negotiated = /permessage-deflate/.test(peer.extensions ?? '');
        eq(/permessage-deflate/.test(conn.extensions), negotiated, 'server and client agree on the extension');
        if (kind === 'our client') ok(negotiated, `our client did not negotiate permessage-deflate (extensions ${JSON.stringify(peer.extensions)})`);
        else note(`${RUNTIME.runtime} ${RUNTIME.version} WebSocket client ${negotiated ? `negotiates permessage-deflate (${JSON.stringify(peer.extensions)})` : 'does not offer permessage-deflate: uncompressed with a deflate server'}`);
        for (const n of [10, 2000, 64 * KiB, 1536 * KiB]) {
          const text = compressibleText(n);
          const r0 = conn.socket.bytesRead;
          const w0 = conn.socket.bytesWritten;
          peer.send(text);
          await expectMessage(peer, text, `compressible text ${sizeName(n)}`);
          const read = conn.socket.bytesRead - r0;
          const written = conn.socket.bytesWritten - w0;
          if (negotiated && n >= 64 * KiB) {
            // The wire carries far fewer bytes than the message: our server always compresses;
            // our client does too. Whether a runtime's client compresses what it sends is its
            // choice (RFC 7692 lets a sender leave any message uncompressed): noted, not asserted.
            ok(written < n / 4, `server → client not compressed: ${written} bytes on the wire for ${n}`);
            if (kind === 'our client') ok(read < n / 4, `client → server not compressed: ${read} bytes on the wire for ${n}`);
            else if (n === 64 * KiB) {
              note(`${RUNTIME.runtime} ${RUNTIME.version} WebSocket client ${read < n / 4 ? 'compresses' : 'does not compress'} what it sends (64 KiB of text: ${read} bytes on the wire)`);
            }
          }
        }
        const bin = Buffer.from(compressibleText(MiB + 7));
        peer.send(bin);
        await expectMessage(peer, bin, 'compressible binary 1 MiB + 7');
        const rnd = randomBytes(9, 200 * KiB);
        peer.send(rnd);
        await expectMessage(peer, rnd, 'incompressible binary 200 KiB');
        peer.close(1000);
        eq((await conn.waitClosed()).code, 1000, 'close after compressed traffic');
      } finally {
        await srv.stop();
      }
    }, { timeout: 20_000 });
  }

  test('wss.close(): every client (ours and the runtime\'s) gets 1001, the server emits close, the port is released', async () => {
    const srv = await startServer();
    const ours = await openOurs(srv.url, undefined, { perMessageDeflate: false });
    const theirs = RuntimeWebSocket ? await openRuntime(srv.url) : null;
    await srv.conns.next();
    if (theirs) await srv.conns.next();
    const closed = withTimeout(new Promise((r) => srv.wss.once('close', r)), 5000, 'the server\'s close event');
    srv.wss.close();
    eq((await ours.waitClosed()).code, 1001, 'our client\'s close code');
    if (theirs) eq((await theirs.waitClosed()).code, 1001, 'the runtime client\'s close code');
    await closed;
    const refused = await withTimeout(new Promise((resolve) => {
      const s = net.connect(srv.port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(false);
      });
      s.once('error', () => resolve(true));
    }), 5000, 'a connection attempt to the closed port');
    ok(refused, `port ${srv.port} still accepts connections after wss.close()`);
  });

  if (RUNTIME.runtime === 'deno') {
    const runAllowed = globalThis.Deno.permissions.querySync({ name: 'run' }).state === 'granted';
    const title = 'deno: the package imports and serves without --allow-env (env reads that throw NotCapable are guarded)';
    if (!runAllowed) skip(title, 'needs --allow-run (run the suite with -A)');
    else {
      test(title, async () => {
        const { execFile } = await import('node:child_process');
        const script = new URL('./deno-no-env.mjs', import.meta.url).pathname;
        const out = await withTimeout(new Promise((resolve) => {
          execFile(globalThis.Deno.execPath(), ['run', '--no-prompt', '--allow-net', script], { timeout: 8000, env: { ...process.env, NO_COLOR: '1' } }, (err, stdout, stderr) => {
            resolve({ code: err ? err.code ?? 1 : 0, stdout: String(stdout).trim(), stderr: String(stderr).trim().split('\n')[0] });
          });
        }), 10_000, 'the child deno');
        eq(out.stdout, 'wasm permessage-deflate 5000', `child output (exit ${out.code}, stderr: ${out.stderr})`);
        eq(out.code, 0, 'child exit code');
      });
    }
  }

  // Our client only: what the WHATWG API cannot do.
  test('our client: ping/pong both ways, with payloads', async () => {
    const srv = await startServer();
    try {
      const peer = await openOurs(srv.url, undefined, { perMessageDeflate: false });
      const conn = await srv.conns.next();
      peer.ws.ping('from client');
      eq(await conn.pings.next(), 'from client', 'ping seen by the server');
      eq(await peer.pongs.next(), 'from client', 'pong (automatic) seen by the client');
      conn.ws.ping('from server');
      eq(await peer.pings.next(), 'from server', 'ping seen by the client');
      eq(await conn.pongs.next(), 'from server', 'pong (automatic) seen by the server');
      peer.ws.ping();
      eq(await peer.pongs.next(), '', 'pong for an empty ping');
      peer.send('after pings');
      await expectMessage(peer, 'after pings', 'echo after pings');
      peer.close(1000);
    } finally {
      await srv.stop();
    }
  });

  test('our client: its own maxPayload closes with 1009 when the server sends more', async () => {
    const srv = await startServer({}, (ws) => ws.on('message', (d) => ws.send(Buffer.alloc(Number(d.toString())))));
    try {
      const peer = await openOurs(srv.url, undefined, { perMessageDeflate: false, maxPayload: 1000 });
      const conn = await srv.conns.next();
      peer.send('1000');
      bytesEq((await peer.messages.next()).binary, Buffer.alloc(1000), 'a message at the limit');
      peer.send('1001');
      eq((await peer.waitClosed()).code, 1009, 'close code at the client');
      eq((await conn.waitClosed()).code, 1009, 'close code seen by the server');
    } finally {
      await srv.stop();
    }
  });

  test('our client: a compressed message inflating past maxPayload closes with 1009', async () => {
    const srv = await startServer({ perMessageDeflate: true, maxPayload: 256 * KiB });
    try {
      const peer = await openOurs(srv.url, undefined, { perMessageDeflate: true });
      const conn = await srv.conns.next();
      ok(/permessage-deflate/.test(peer.extensions), 'negotiated');
      peer.send(Buffer.alloc(256 * KiB + 1));
      eq((await peer.waitClosed()).code, 1009, 'close code at the client');
      eq((await conn.waitClosed()).code, 1009, 'close code at the server');
    } finally {
      await srv.stop();
    }
  });

  test('our client: permessage-deflate offered but declined by the server → no extension, plain traffic', async () => {
    const srv = await startServer();
    try {
      const peer = await openOurs(srv.url, undefined, { perMessageDeflate: true });
      const conn = await srv.conns.next();
      eq(peer.extensions, '', 'client extensions');
      eq(conn.extensions, '', 'server extensions');
      const text = compressibleText(100 * KiB);
      const r0 = conn.socket.bytesRead;
      peer.send(text);
      await expectMessage(peer, text, 'echo');
      ok(conn.socket.bytesRead - r0 >= text.length, 'uncompressed on the wire');
      peer.close(1000);
    } finally {
      await srv.stop();
    }
  });
}

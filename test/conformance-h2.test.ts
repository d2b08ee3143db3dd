// The server's Autobahn-style case table (test/conformance.test.ts, 1.* – 13.*) with every case
// carried by an HTTP/2 stream (RFC 8441): the same file, with helpers.startServer swapped for
// startServerOverH2 (test/h2.ts), whose TCP bridge turns each raw client into an extended CONNECT
// on one shared h2 session. Same frames, same chops, same verdicts; TCP FIN/RST ⇄ END_STREAM/RST_STREAM.
import { afterAll, expect, vi } from 'vitest';

vi.mock('./helpers.js', async (importOriginal) => {
  const helpers = await importOriginal<typeof import('./helpers.js')>();
  // Loaded when first called: test/h2.ts imports this very module.
  const startServer: typeof helpers.startServer = async (opts) => (await import('./h2.js')).startServerOverH2(opts);
  return { ...helpers, startServer };
});

await import('./conformance.test.js');

// Every case's connection arrived at the server as an h2 stream.
afterAll(async () => {
  const { overH2 } = await import('./h2.js');
  expect(overH2.connections).toBeGreaterThan(450);
});

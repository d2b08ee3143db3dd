// Plain-JS test fixtures shared by the vitest suites (test/helpers.ts) and the runtime suite
// (test/runtime/, which runs unchanged on Node, Bun and Deno).

/** Mulberry32: small, seeded, reproducible. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** RFC 6455 §1.3's sample nonce. */
export const TEST_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/** An HTTP/1.1 upgrade request for `path`, with `extra` headers added or replaced. */
export function upgradeRequest(path = '/', extra = {}) {
  const headers = {
    Host: '127.0.0.1',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': TEST_KEY,
    'Sec-WebSocket-Version': '13',
    ...extra,
  };
  return `GET ${path} HTTP/1.1\r\n` + Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n';
}

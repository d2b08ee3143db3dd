// The chat page: a fixed set of files read once from the package's public/ directory (no paths
// from the request ever reach the file system).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Buffer } from 'node:buffer';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

const HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
};

/** public/ next to the package root: src/cli/ and dist/esm/cli/ both walk up to it. */
export function findPublicDir(from = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'public');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  throw new Error(`public/index.html not found above ${from}`);
}

interface File {
  body: Buffer;
  type: string;
}

/** A request handler for the files in `dir`; `index.html` gets the chat path filled in. */
export function staticFiles(dir: string, chatPath: string): (req: IncomingMessage, res: ServerResponse) => boolean {
  const files = new Map<string, File>();
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (!statSync(full).isFile() || name.startsWith('.')) continue;
    let body = readFileSync(full);
    if (name === 'index.html') {
      body = Buffer.from(body.toString('utf8').replace('data-chat-path="/chat"', `data-chat-path="${chatPath}"`));
    }
    files.set('/' + name, { body, type: TYPES[extname(name)] ?? 'application/octet-stream' });
  }
  const index = files.get('/index.html');
  if (index) files.set('/', index);
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const f = files.get(path);
    if (!f) return false;
    res.writeHead(200, { ...HEADERS, 'Content-Type': f.type, 'Content-Length': f.body.length, 'Cache-Control': 'no-cache' });
    res.end(req.method === 'HEAD' ? undefined : f.body);
    return true;
  };
}

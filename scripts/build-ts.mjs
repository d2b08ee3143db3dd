// Compiles src/ twice: ESM (dist/esm) and CommonJS (dist/cjs), both with .d.ts, so that the
// package's `exports` map serves `import` and `require` alike.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const tsc = join(dirname(require.resolve('typescript/package.json')), 'bin', 'tsc');
const run = (...args) => execFileSync(process.execPath, [tsc, ...args], { cwd: root, stdio: 'inherit' });

rmSync(join(root, 'dist'), { recursive: true, force: true });
run('-p', 'tsconfig.json');
run('-p', 'tsconfig.cjs.json');
mkdirSync(join(root, 'dist', 'cjs'), { recursive: true });
writeFileSync(join(root, 'dist', 'cjs', 'package.json'), '{ "type": "commonjs" }\n');
// src/codec/location.ts reads import.meta.url, which CommonJS does not have: its CJS copy answers with __filename.
writeFileSync(join(root, 'dist', 'cjs', 'codec', 'location.js'), [
  "'use strict';",
  "Object.defineProperty(exports, '__esModule', { value: true });",
  "exports.MODULE_LOCATION = __filename;",
  '',
].join('\n'));
// The CommonJS entry mirrors ws's: require('wasmws') is the WebSocket class with every named export
// on it (require('wasmws').WebSocketServer, .Server, .createCodec, .mask, …).
writeFileSync(join(root, 'dist', 'cjs', 'main.js'), [
  "'use strict';",
  "const m = require('./index.js');",
  'module.exports = Object.assign(m.WebSocket, m);',
  '',
].join('\n'));
// As a type too (`const ws: WebSocket = new WebSocket(url)` after `import WebSocket = require('wasmws')`),
// with the type names @types/ws hangs on its export (WebSocket.RawData, WebSocket.Server, …).
const wsTypeNames = [
  'RawData', 'Data', 'CertMeta', 'ClientOptions', 'ServerOptions', 'PerMessageDeflateOptions', 'Event', 'ErrorEvent',
  'CloseEvent', 'MessageEvent', 'WebSocketEventMap', 'EventListenerOptions', 'AddressInfo', 'VerifyClientCallbackSync',
  'VerifyClientCallbackAsync', 'FinishRequestCallback', 'Server', 'WebSocketServer', 'WebSocket',
];
writeFileSync(join(root, 'dist', 'cjs', 'main.d.ts'), [
  "import * as m from './index.js';",
  "import WebSocketDefault from './index.js';",
  // The class with every named export on it; .WebSocket is the same object (Object.assign above).
  'type Entry = typeof m.default & typeof m;',
  'interface WasmwsEntry extends Entry {',
  '  WebSocket: WasmwsEntry;',
  '}',
  'declare const wasmws: WasmwsEntry;',
  'type wasmws = WebSocketDefault;',
  'declare namespace wasmws {',
  ...wsTypeNames.map((n) =>
    n.startsWith('VerifyClientCallback')
      ? `  type ${n}<R extends import('node:http').IncomingMessage = import('node:http').IncomingMessage> = WebSocketDefault.${n}<R>;`
      : `  type ${n} = WebSocketDefault.${n};`,
  ),
  '}',
  'export = wasmws;',
  '',
].join('\n'));
console.log('ts: dist/esm and dist/cjs');

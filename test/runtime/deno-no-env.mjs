// Run by the suite on Deno as `deno run --no-prompt --allow-net` (no --allow-env): the package must
// import and work where reading the environment throws NotCapable. Prints one line: the result.
import { createCodec, WebSocketServer, WebSocket } from '../../dist/esm/index.js';

const timer = setTimeout(() => {
  console.log('timeout');
  Deno.exit(1);
}, 5000);
const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: true });
wss.on('connection', (ws) => ws.on('message', (d, isBinary) => ws.send(d, { binary: isBinary })));
wss.on('listening', () => {
  const ws = new WebSocket(`ws://127.0.0.1:${wss.address().port}`);
  ws.on('open', () => ws.send('x'.repeat(5000)));
  ws.on('message', (d) => {
    console.log(`${createCodec().backend} ${ws.extensions} ${d.length}`);
    clearTimeout(timer);
    ws.terminate();
    wss.close(() => Deno.exit(0));
  });
  ws.on('error', (e) => console.log(`error ${e.message}`));
});

// createWebSocketStream: a Duplex over a WebSocket, with ws's semantics — each message is one
// chunk read, each chunk written is one message sent, a full readable buffer pauses the socket.
import { Duplex, type DuplexOptions } from 'node:stream';
import type { WebSocket } from './websocket.js';

function emitClose(stream: Duplex): void {
  stream.emit('close');
}

/** Both sides are done: release the WebSocket (emitClose is off, so 'close' comes from _destroy). */
function duplexOnEnd(this: Duplex): void {
  if (!this.destroyed && this.writableFinished) this.destroy();
}

/** The stream's first error destroys it; re-emitted only when nobody else listens (so it still throws). */
function duplexOnError(this: Duplex, err: Error): void {
  this.removeListener('error', duplexOnError);
  this.destroy();
  if (this.listenerCount('error') === 0) this.emit('error', err);
}

/**
 * Wraps `ws` in a Duplex (ws's `createWebSocketStream`). `options` are Duplex options, except that
 * the stream is never in object mode for writing (`objectMode` and `writableObjectMode` are forced
 * off, `autoDestroy` and `emitClose` too); with `readableObjectMode: true` text messages are read
 * as strings and binary ones as Buffers.
 *
 * - Reading: every message is pushed as a chunk; when the readable buffer is full the WebSocket is
 *   paused, and resumed when the stream is read again. The WebSocket's 'close' ends the readable side.
 * - Writing: every chunk is sent as one message (waiting for 'open' while connecting); `end()`
 *   starts the closing handshake and finishes when our side of TCP is ended.
 * - `destroy()` terminates the WebSocket (no closing handshake) unless it failed on its own (then
 *   it is already sending its close frame); an error of the WebSocket destroys the stream with it.
 */
export function createWebSocketStream(ws: WebSocket, options?: DuplexOptions): Duplex {
  let terminateOnDestroy = true;
  const duplex = new Duplex({
    ...options,
    autoDestroy: false,
    emitClose: false,
    objectMode: false,
    writableObjectMode: false,
  });

  ws.on('message', (msg, isBinary) => {
    const data = !isBinary && duplex.readableObjectMode ? msg.toString() : msg;
    if (!duplex.push(data)) ws.pause();
  });

  ws.once('error', (err) => {
    if (duplex.destroyed) return;
    // The WebSocket failed and is closing with a close frame: destroying the stream must not cut
    // that short with terminate(). (Before 'open' there is no socket and terminate() is moot.)
    terminateOnDestroy = false;
    duplex.destroy(err);
  });

  ws.once('close', () => {
    if (duplex.destroyed) return;
    duplex.push(null);
  });

  duplex._destroy = (err, callback) => {
    if (ws.readyState === ws.CLOSED) {
      callback(err);
      process.nextTick(emitClose, duplex);
      return;
    }
    let called = false;
    ws.once('error', (e: Error) => {
      called = true;
      callback(e);
    });
    ws.once('close', () => {
      if (!called) callback(err);
      process.nextTick(emitClose, duplex);
    });
    if (terminateOnDestroy) ws.terminate();
  };

  duplex._final = (callback) => {
    if (ws.readyState === ws.CONNECTING) {
      ws.once('open', () => duplex._final(callback));
      return;
    }
    const socket = ws._socket;
    // A client whose handshake failed never gets a socket: its 'error' destroys the stream.
    if (socket === null) return;
    if (socket.writableFinished) {
      callback();
      if (duplex.readableEnded) duplex.destroy();
    } else {
      // Not destroyed here: the WebSocket's 'close' (after the closing handshake) pushes the end
      // of the readable side, and its 'end' destroys the stream.
      socket.once('finish', () => callback());
      ws.close();
    }
  };

  duplex._read = () => {
    if (ws.isPaused) ws.resume();
  };

  duplex._write = (chunk, encoding, callback) => {
    if (ws.readyState === ws.CONNECTING) {
      ws.once('open', () => duplex._write(chunk, encoding, callback));
      return;
    }
    ws.send(chunk, callback);
  };

  duplex.on('end', duplexOnEnd);
  duplex.on('error', duplexOnError);
  return duplex;
}

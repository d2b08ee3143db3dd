export { Opcode, WS_GUID, DEFAULT_MAX_PAYLOAD, MAX_CONTROL_PAYLOAD } from './constants.js';
export { CloseCode, ProtocolError, ERRORS, type ErrorKind } from './errors.js';
export { createCodec, resolveCodec, TsCodec, WasmCodec, type Codec, type CodecBackend, type CodecOptions } from './codec/index.js';
export { FrameParser, makeFrame, type Frame, type FrameSink, type ParserOptions } from './parser.js';
export {
  encodeFrame, encodeFrameParts, writeHeader, headerSize, randomMaskKey, encodeClosePayload, decodeClosePayload,
  isValidCloseCode, type EncodeOptions, type CloseInfo,
} from './frame.js';
export { WebSocket, type ConnectionOptions, type BinaryType, type Data } from './websocket.js';
export { WebSocketServer, type ServerOptions, type VerifyClientInfo } from './server.js';
export type { ClientOptions } from './client.js';
export { Protocol, type ProtocolSink, type ProtocolOptions, type MessageCompressor } from './protocol.js';
export {
  acceptKey, generateKey, validateUpgrade, buildAcceptResponse, buildErrorResponse, buildUpgradeRequest, validateAcceptResponse,
} from './handshake.js';
export { serveCluster, ClusterHub, workerCount, type ClusterOptions, type ClusterHandle, type WorkerInfo } from './cluster.js';
export { mask, unmask } from './bufferutil.js';
export { MAX_TOPIC_LENGTH, type PublishOptions } from './topics.js';
export { LocalBroker, type Broker, type BrokerSink } from './broker/types.js';
export { RedisBroker, type RedisBrokerOptions, type RedisClientLike } from './broker/redis.js';
export { ClusterBroker, type ClusterBrokerOptions } from './broker/cluster.js';
export { RedisPresence, type RedisPresenceOptions } from './broker/presence.js';

import { WebSocket as WebSocketClass } from './websocket.js';
import { WebSocketServer as WebSocketServerClass } from './server.js';

/** The default export, as `ws`'s: the WebSocket class with `WebSocket.Server` / `WebSocket.WebSocketServer`. */
const WebSocketDefault = WebSocketClass as typeof WebSocketClass & {
  Server: typeof WebSocketServerClass;
  WebSocketServer: typeof WebSocketServerClass;
  WebSocket: typeof WebSocketClass;
};
WebSocketDefault.Server = WebSocketServerClass;
WebSocketDefault.WebSocketServer = WebSocketServerClass;
WebSocketDefault.WebSocket = WebSocketClass;
export default WebSocketDefault;

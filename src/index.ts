export { Opcode, WS_GUID, DEFAULT_MAX_PAYLOAD, MAX_CONTROL_PAYLOAD } from './constants.js';
export { CloseCode, ProtocolError, ERRORS, type ErrorKind } from './errors.js';
export {
  createCodec, resolveCodec, describeCodec, AutoCodec, NativeCodec, HAS_NATIVE, TsCodec, WasmCodec,
  type Codec, type CodecBackend, type CodecOptions, type CodecDescription, type BackendName, type Segment,
} from './codec/index.js';
export { FrameParser, makeFrame, type Frame, type FrameSink, type ParserOptions } from './parser.js';
export {
  encodeFrame, encodeFrameParts, writeHeader, headerSize, randomMaskKey, encodeClosePayload, decodeClosePayload,
  isValidCloseCode, type EncodeOptions, type CloseInfo,
} from './frame.js';
export { WebSocket, type ConnectionOptions, type BinaryType, type Data } from './websocket.js';
export { WebSocketServer, type ServerOptions, type VerifyClientInfo } from './server.js';
export { isHttp2Server, type Http2WebSocketRequest, type Http2AnyServer } from './http2.js';
export {
  validateExtendedConnect, h2AcceptLines, h2ResponseHeaders, h2ErrorHeaders, buildExtendedConnectHeaders, validateExtendedConnectResponse,
  isExtendedConnect, H2_WEBSOCKET_PROTOCOL, type ExtendedConnectAccepted, type ExtendedConnectOptions,
} from './handshake.js';
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
export { runtimeInternals, type InternalsReport } from './internals.js';
export { createWebSocketStream } from './stream.js';
export type {
  RawData, CertMeta, Event, ErrorEvent, CloseEvent, MessageEvent, WebSocketEventMap, EventListenerOptions, AddressInfo,
  VerifyClientCallbackSync, VerifyClientCallbackAsync, FinishRequestCallback,
} from './ws-types.js';
export type { PerMessageDeflateOptions } from './extensions.js';
/** @types/ws exports the server class's type as `Server` too. */
export type { WebSocketServer as Server } from './server.js';
export {
  extension, subprotocol, type ParsedExtensions, type ExtensionParams, type ExtensionParamValue, type FormatExtensions, type FormatParams,
} from './headers.js';

import { WebSocket as WebSocketClass } from './websocket.js';
import { WebSocketServer as WebSocketServerClass } from './server.js';
import { createWebSocketStream as createWebSocketStreamFn } from './stream.js';
import { extension as extensionModule, subprotocol as subprotocolModule } from './headers.js';
import type * as T from './ws-types.js';
import type { Data as DataType } from './data.js';
import type { ClientOptions as ClientOptionsType } from './client.js';
import type { ServerOptions as ServerOptionsType } from './server.js';
import type { PerMessageDeflateOptions as PerMessageDeflateOptionsType } from './extensions.js';

/**
 * The default export, as `ws`'s: the WebSocket class with `WebSocket.Server` /
 * `WebSocket.WebSocketServer`, `WebSocket.createWebSocketStream`, `WebSocket.extension` and
 * `WebSocket.subprotocol` on it.
 */
interface DefaultStatics {
  Server: typeof WebSocketServerClass;
  WebSocketServer: typeof WebSocketServerClass;
  /** The default export itself (`WebSocket.WebSocket === WebSocket`). */
  WebSocket: typeof WebSocketClass & DefaultStatics;
  createWebSocketStream: typeof createWebSocketStreamFn;
  extension: typeof extensionModule;
  subprotocol: typeof subprotocolModule;
}
const WebSocketDefault = WebSocketClass as typeof WebSocketClass & DefaultStatics;
WebSocketDefault.Server = WebSocketServerClass;
WebSocketDefault.WebSocketServer = WebSocketServerClass;
WebSocketDefault.WebSocket = WebSocketDefault;
WebSocketDefault.createWebSocketStream = createWebSocketStreamFn;
WebSocketDefault.extension = extensionModule;
WebSocketDefault.subprotocol = subprotocolModule;
/** `import WebSocket from 'wasmws'` is a type too (`const ws: WebSocket`), as in ws. */
type WebSocketDefault = WebSocketClass;
/** The type names @types/ws has on its default export (`WebSocket.RawData`, `WebSocket.Server`, …). */
declare namespace WebSocketDefault {
  type RawData = T.RawData;
  type Data = DataType;
  type CertMeta = T.CertMeta;
  type ClientOptions = ClientOptionsType;
  type ServerOptions = ServerOptionsType;
  type PerMessageDeflateOptions = PerMessageDeflateOptionsType;
  type Event = T.Event;
  type ErrorEvent = T.ErrorEvent;
  type CloseEvent = T.CloseEvent;
  type MessageEvent = T.MessageEvent;
  type WebSocketEventMap = T.WebSocketEventMap;
  type EventListenerOptions = T.EventListenerOptions;
  type AddressInfo = T.AddressInfo;
  type VerifyClientCallbackSync<R extends import('node:http').IncomingMessage = import('node:http').IncomingMessage> = T.VerifyClientCallbackSync<R>;
  type VerifyClientCallbackAsync<R extends import('node:http').IncomingMessage = import('node:http').IncomingMessage> = T.VerifyClientCallbackAsync<R>;
  type FinishRequestCallback = T.FinishRequestCallback;
  type Server = WebSocketServerClass;
  type WebSocketServer = WebSocketServerClass;
  type WebSocket = WebSocketClass;
}
export default WebSocketDefault;

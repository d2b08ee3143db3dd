export { Opcode, WS_GUID, DEFAULT_MAX_PAYLOAD, MAX_CONTROL_PAYLOAD } from './protocol/constants.js';
export { CloseCode, ProtocolError, ERRORS, type ErrorKind } from './protocol/errors.js';
export {
  createCodec, resolveCodec, describeCodec, AutoCodec, NativeCodec, HAS_NATIVE, TsCodec, WasmCodec,
  type Codec, type CodecBackend, type CodecOptions, type CodecDescription, type BackendName, type Segment,
} from './codec/index.js';
export { FrameParser, makeFrame, type Frame, type FrameSink, type ParserOptions } from './protocol/parser.js';
export {
  encodeFrame, encodeFrameParts, writeHeader, headerSize, randomMaskKey, encodeClosePayload, decodeClosePayload,
  isValidCloseCode, type EncodeOptions, type CloseInfo,
} from './protocol/frame.js';
export { WebSocket, type ConnectionOptions, type BinaryType, type Data } from './node/websocket.js';
export { WebSocketServer, type ServerOptions, type VerifyClientInfo } from './node/server.js';
export { isHttp2Server, type Http2WebSocketRequest, type Http2AnyServer } from './node/http2.js';
export {
  validateExtendedConnect, h2AcceptLines, h2ResponseHeaders, h2ErrorHeaders, buildExtendedConnectHeaders, validateExtendedConnectResponse,
  isExtendedConnect, H2_WEBSOCKET_PROTOCOL, type ExtendedConnectAccepted, type ExtendedConnectOptions,
} from './handshake/upgrade.js';
export type { ClientOptions } from './node/client.js';
export { Protocol, State, type ProtocolSink, type ProtocolOptions, type MessageCompressor } from './protocol/protocol.js';
export {
  acceptKey, generateKey, validateUpgrade, buildAcceptResponse, buildErrorResponse, buildUpgradeRequest, validateAcceptResponse,
} from './handshake/upgrade.js';
export { serveCluster, ClusterHub, workerCount, type ClusterOptions, type ClusterHandle, type WorkerInfo } from './cluster/serve.js';
export { mask, unmask } from './bufferutil.js';
export { MAX_TOPIC_LENGTH, type PublishOptions } from './pubsub/topics.js';
export { LocalBroker, type Broker, type BrokerSink } from './pubsub/broker.js';
export { RedisBroker, type RedisBrokerOptions, type RedisClientLike } from './pubsub/redis.js';
export { ClusterBroker, type ClusterBrokerOptions } from './pubsub/cluster-broker.js';
export { RedisPresence, type RedisPresenceOptions } from './pubsub/presence.js';
export { runtimeInternals, type InternalsReport } from './internals.js';
export { createWebSocketStream } from './node/stream.js';
export type {
  RawData, CertMeta, Event, ErrorEvent, CloseEvent, MessageEvent, WebSocketEventMap, EventListenerOptions, AddressInfo,
  VerifyClientCallbackSync, VerifyClientCallbackAsync, FinishRequestCallback,
} from './ws-types.js';
export type { PerMessageDeflateOptions } from './handshake/extensions.js';
/** @types/ws exports the server class's type as `Server` too. */
export type { WebSocketServer as Server } from './node/server.js';
export {
  extension, subprotocol, type ParsedExtensions, type ExtensionParams, type ExtensionParamValue, type FormatExtensions, type FormatParams,
} from './handshake/headers.js';

import { WebSocket as WebSocketClass } from './node/websocket.js';
import { WebSocketServer as WebSocketServerClass } from './node/server.js';
import { createWebSocketStream as createWebSocketStreamFn } from './node/stream.js';
import { extension as extensionModule, subprotocol as subprotocolModule } from './handshake/headers.js';
import type * as T from './ws-types.js';
import type { Data as DataType } from './protocol/data.js';
import type { ClientOptions as ClientOptionsType } from './node/client.js';
import type { ServerOptions as ServerOptionsType } from './node/server.js';
import type { PerMessageDeflateOptions as PerMessageDeflateOptionsType } from './handshake/extensions.js';

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

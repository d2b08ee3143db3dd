// The chat room behind /chat: JSON text frames, validated and length-limited, relayed to every
// client on every worker through the ClusterHub.
//
//   client → server  {"type":"join","name":"ada"}        once, before anything else
//                    {"type":"message","text":"hi"}
//   server → client  {"type":"message","name":"ada","text":"hi","time":1700000000000}  to everyone
//                    {"type":"presence","users":["ada","bob"]}  on connect and on every join/leave
//                    {"type":"error","error":"…"}                to the sender of a bad message
//
// Text is relayed verbatim (no HTML escaping here: the page renders it with textContent).
import type { WebSocket } from '../websocket.js';
import type { WebSocketServer } from '../server.js';
import type { ClusterHub } from '../cluster.js';

export const LIMITS = {
  /** Longest name, in UTF-16 code units (what an <input maxlength> counts). */
  name: 32,
  /** Longest message text, in UTF-16 code units. */
  text: 1000,
  /** Bad messages tolerated on one connection before it is closed with 1008. */
  errors: 20,
};

const USERS_KEY = 'chat.users';
const CHANNEL = 'chat';
// C0/C1 controls (tab and newline are fine in a message text, not in a name).
const NAME_BAD = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const TEXT_BAD = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

export type ChatIn = { type: 'join'; name: string } | { type: 'message'; text: string };
export type ChatOut =
  | { type: 'message'; name: string; text: string; time: number }
  | { type: 'presence'; users: string[] }
  | { type: 'error'; error: string };

/** Validate one client frame; returns the command or an error string. */
export function parseChat(raw: string): ChatIn | string {
  let m: unknown;
  try {
    m = JSON.parse(raw);
  } catch {
    return 'invalid JSON';
  }
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return 'expected a JSON object with a "type"';
  const o = m as Record<string, unknown>;
  if (o.type === 'join') {
    if (typeof o.name !== 'string') return 'join needs a "name" string';
    const name = o.name.trim();
    if (name.length === 0) return 'name must not be empty';
    if (name.length > LIMITS.name) return `name too long (max ${LIMITS.name} characters)`;
    if (NAME_BAD.test(name)) return 'name must not contain control characters';
    return { type: 'join', name };
  }
  if (o.type === 'message') {
    if (typeof o.text !== 'string') return 'message needs a "text" string';
    if (o.text.trim().length === 0) return 'message text must not be empty';
    if (o.text.length > LIMITS.text) return `message too long (max ${LIMITS.text} characters)`;
    if (TEXT_BAD.test(o.text)) return 'message must not contain control characters';
    return { type: 'message', text: o.text };
  }
  return typeof o.type === 'string' ? `unknown message type "${o.type.slice(0, 32)}"` : 'missing "type"';
}

/** One chat room spread over every worker of a cluster (or one process). */
export class ChatRoom {
  private readonly names = new Map<WebSocket, string>();
  private readonly errors = new WeakMap<WebSocket, number>();
  private presence = '{"type":"presence","users":[]}';
  private users: string[] = [];

  constructor(wss: WebSocketServer, private readonly hub: ClusterHub) {
    hub.on('message', (channel: string, data: string | Buffer) => {
      // A chat message published by any worker, this one included: frame once, send to all.
      if (channel === CHANNEL) wss.broadcast(String(data));
    });
    hub.on('shared', (key: string, lists: string[][]) => {
      if (key !== USERS_KEY) return;
      this.users = lists.flat().sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      this.presence = JSON.stringify({ type: 'presence', users: this.users } satisfies ChatOut);
      wss.broadcast(this.presence);
    });
    wss.on('connection', (ws: WebSocket) => this.handle(ws));
    this.publishUsers();
  }

  /** Everyone online on every worker, sorted. */
  get online(): string[] {
    return this.users;
  }

  private handle(ws: WebSocket): void {
    ws.send(this.presence);
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(ws, data, isBinary));
    ws.once('close', () => {
      if (this.names.delete(ws)) this.publishUsers();
    });
  }

  private onMessage(ws: WebSocket, data: Buffer, isBinary: boolean): void {
    const cmd = isBinary ? 'binary frames are not supported; send JSON text' : parseChat(data.toString());
    if (typeof cmd === 'string') return this.fail(ws, cmd);
    if (cmd.type === 'join') {
      if (this.names.has(ws)) return this.fail(ws, 'already joined');
      this.names.set(ws, cmd.name);
      this.publishUsers();
      return;
    }
    const name = this.names.get(ws);
    if (name === undefined) return this.fail(ws, 'join first: {"type":"join","name":"…"}');
    const out: ChatOut = { type: 'message', name, text: cmd.text, time: Date.now() };
    this.hub.publish(CHANNEL, JSON.stringify(out));
  }

  private fail(ws: WebSocket, error: string): void {
    const n = (this.errors.get(ws) ?? 0) + 1;
    this.errors.set(ws, n);
    if (ws.readyState !== ws.OPEN) return;
    ws.send(JSON.stringify({ type: 'error', error } satisfies ChatOut));
    if (n >= LIMITS.errors) ws.close(1008, 'too many bad messages');
  }

  private publishUsers(): void {
    this.hub.share(USERS_KEY, [...this.names.values()]);
  }
}

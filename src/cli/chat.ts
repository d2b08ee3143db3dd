// The chat room behind /chat: JSON text frames, validated and length-limited, published on the
// topic "chat" (every worker through the ClusterBroker, or every node through the RedisBroker);
// presence through the hub's shared values or RedisPresence.
//
//   client → server  {"type":"join","name":"ada"}        once, before anything else
//                    {"type":"message","text":"hi"}
//   server → client  {"type":"message","name":"ada","text":"hi","time":1700000000000}  to everyone
//                    {"type":"presence","users":["ada","bob"]}  on connect and on every join/leave
//                    {"type":"error","error":"…"}                to the sender of a bad message
//
// Text is relayed verbatim (no HTML escaping here: the page renders it with textContent).
import { CloseCode } from '../protocol/constants.js';
import type { WebSocket } from '../node/websocket.js';
import type { WebSocketServer } from '../node/server.js';
import { EventEmitter } from 'node:events';
import type { ClusterHub } from '../cluster/serve.js';

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

/** The user list goes out at most this often (ms); a change within it goes out when it ends. */
const PRESENCE_EVERY_MS = 200;

/** Where the names of joined users meet: one list per worker or node, 'change' with all lists. */
export interface ChatPresence {
  set(names: string[]): void;
  on(event: 'change', listener: (lists: string[][]) => void): unknown;
}

/** Presence through the ClusterHub's shared values (the workers of one machine). */
export class HubPresence extends EventEmitter implements ChatPresence {
  constructor(private readonly hub: ClusterHub) {
    super();
    hub.on('shared', (key: string, lists: string[][]) => {
      if (key === USERS_KEY) this.emit('change', lists);
    });
  }

  set(names: string[]): void {
    this.hub.share(USERS_KEY, names);
  }
}

/** One chat room spread over every worker of a cluster (or one process), or every node through Redis. */
export class ChatRoom {
  private readonly names = new Map<WebSocket, string>();
  private readonly errors = new WeakMap<WebSocket, number>();
  private presence = '{"type":"presence","users":[]}';
  private users: string[] = [];

  private readonly people: ChatPresence;

  /** `wss` publishes on the topic "chat" through its broker; `presence` (or a hub) carries the names. */
  constructor(private readonly wss: WebSocketServer, presence: ChatPresence | ClusterHub) {
    this.people = 'share' in presence ? new HubPresence(presence) : presence;
    this.people.on('change', (lists: string[][]) => {
      const users = lists.flat().sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      this.users = users;
      this.presence = JSON.stringify({ type: 'presence', users } satisfies ChatOut);
      this.announce();
    });
    wss.on('connection', (ws: WebSocket) => this.handle(ws));
    this.publishUsers();
  }

  /** The presence last broadcast, and the timer of the next broadcast. */
  private announced = this.presence;
  private announcing: NodeJS.Timeout | null = null;

  /**
   * Broadcast the user list when it changed, at most once per PRESENCE_EVERY_MS: every join and
   * leave sends the whole list to everyone, so a client that connects, joins and leaves in a loop
   * would otherwise make the server send (users × list) bytes per cycle.
   */
  private announce(): void {
    if (this.announcing !== null) return;
    if (this.presence !== this.announced) {
      this.announced = this.presence;
      this.wss.broadcast(this.presence);
    }
    this.announcing = setTimeout(() => {
      this.announcing = null;
      if (this.presence !== this.announced) this.announce();
    }, PRESENCE_EVERY_MS);
    this.announcing.unref();
  }

  /** Everyone online on every worker, sorted. */
  get online(): string[] {
    return this.users;
  }

  private handle(ws: WebSocket): void {
    ws.send(this.presence);
    ws.subscribe(CHANNEL);
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
    this.wss.publish(CHANNEL, JSON.stringify(out));
  }

  private fail(ws: WebSocket, error: string): void {
    const n = (this.errors.get(ws) ?? 0) + 1;
    this.errors.set(ws, n);
    if (ws.readyState !== ws.OPEN) return;
    ws.send(JSON.stringify({ type: 'error', error } satisfies ChatOut));
    if (n >= LIMITS.errors) ws.close(CloseCode.POLICY_VIOLATION, 'too many bad messages');
  }

  private publishUsers(): void {
    this.people.set([...this.names.values()]);
  }
}

// Type declarations of @shopstream/client (shopstream.js), the shopstream
// browser client; the service serves them at /shopstream.d.ts too.

export declare const BATCH_SUBPROTOCOL: 'shopstream.batch';

export declare const CloseCode: Readonly<{
  NORMAL: 1000;
  GOING_AWAY: 1001;
  ABNORMAL: 1006;
  POLICY_VIOLATION: 1008;
  MESSAGE_TOO_BIG: 1009;
  INTERNAL_ERROR: 1011;
  TRY_AGAIN_LATER: 1013;
}>;

/**
 * The channels, each with its entity (events are named `${entity}:${action}`).
 * A server with more channels: augment it,
 *   declare module '@shopstream/client' { interface Channels { coupon_changes: 'coupon' } }
 */
export interface Channels {
  order_changes: 'order';
  product_changes: 'product';
  customer_changes: 'customer';
  shipment_changes: 'shipment';
  transaction_changes: 'transaction';
}

/**
 * Your row type per channel, used when subscribe is not given one. Empty: every
 * row is a Row. Augment it to type the rows once for the whole app,
 *   declare module '@shopstream/client' { interface ChannelRows { order_changes: MyOrder } }
 */
export interface ChannelRows {}

export type Channel = keyof Channels & string;
export type Entity = Channels[Channel];
export type Action = 'created' | 'updated' | 'deleted' | 'truncated';
export type EventName = `${Entity}:${Action}`;

/** A JSON value as PostgreSQL's row_to_json gives it. */
export type JSONValue = string | number | boolean | null | JSONValue[] | { [key: string]: JSONValue };
/**
 * A row. With numbers: 'string' a value may be a number's exact text; with
 * 'bigint' also a bigint: supply your own row types then.
 */
export type Row = { [column: string]: JSONValue };

/** The row type of channel C: ChannelRows[C], else Row. */
export type RowOf<C extends string> = C extends keyof ChannelRows ? ChannelRows[C] : Row;

/** field → value, or → list of values (any of); all fields must match. */
export type Filter<R extends object = Row> = { [K in keyof R]?: R[K] | readonly R[K][] };

export interface EventMessage<Name extends string = EventName, Data extends object = Row, C extends string = string> {
  type: 'event';
  /** Decimal string, increasing in commit order across all channels. */
  id: string;
  channel: C;
  event: Name;
  /**
   * The row after the change (before it for deleted, {} for truncated),
   * without secret columns. Updates carry changed_fields: the new values.
   */
  data: Data & { changed_fields?: Partial<Data> };
  /** Old values of the changed fields (updates only). */
  previous?: Partial<Data>;
  /**
   * The changed fields of an update whose row has a column named
   * changed_fields (data.changed_fields is then that column's value).
   * Absent otherwise: they are in data.changed_fields.
   */
  changed_fields?: Partial<Data>;
  actor?: string;
  /** UTC ISO-8601 with milliseconds. */
  timestamp: string;
}

/** The events of channel C, with rows of type R. */
export type ChannelEvent<C extends Channel, R extends object = RowOf<C>> = C extends Channel
  ? EventMessage<`${Channels[C]}:${Action}`, R, C>
  : never;

/** channel → its event type. */
export type ChannelEvents = { [C in Channel]: ChannelEvent<C> };

export type OrderEvent<R extends object = RowOf<'order_changes'>> = ChannelEvent<'order_changes', R>;
export type ProductEvent<R extends object = RowOf<'product_changes'>> = ChannelEvent<'product_changes', R>;
export type CustomerEvent<R extends object = RowOf<'customer_changes'>> = ChannelEvent<'customer_changes', R>;
export type ShipmentEvent<R extends object = RowOf<'shipment_changes'>> = ChannelEvent<'shipment_changes', R>;
export type TransactionEvent<R extends object = RowOf<'transaction_changes'>> = ChannelEvent<'transaction_changes', R>;
export type ShopEvent = ChannelEvents[Channel];

export type ErrorCode =
  | 'invalid_request'
  | 'unknown_channel'
  | 'forbidden'
  | 'subscription_limit'
  | 'rate_limited'
  | 'internal_error';

export type ServerMessage =
  | { type: 'connected'; message: string; userId: number }
  | { type: 'subscribed'; channel: string; position: string }
  | { type: 'unsubscribed'; channel: string }
  | { type: 'pong'; timestamp: string }
  | { type: 'resync_required'; channel: string }
  /** channel: only on a revocation (code forbidden), unasked. */
  | { type: 'error'; code: ErrorCode; message: string; channel?: string }
  | EventMessage<string>;

/**
 * connecting: first attempt; live: connected and every subscribe answered;
 * reconnecting: the socket dropped (or the heartbeat found it dead, or the
 * browser went offline), waiting or retrying; login-required: closed with 1008,
 * no more attempts until reconnect(); closed: client.close() was called.
 */
export type ConnectionState = 'connecting' | 'live' | 'reconnecting' | 'login-required' | 'closed';

/**
 * subscribing: sent (or waiting for a connection); subscribed: confirmed on the
 * current socket; error: refused or revoked (see error; retried on the next
 * connection); unsubscribed: ended by unsubscribe, a new subscribe to the
 * channel, or close().
 */
export type SubscriptionState = 'subscribing' | 'subscribed' | 'error' | 'unsubscribed';

export interface ServerError {
  code: ErrorCode | (string & {});
  message: string;
}

export interface ClientError {
  /** A server error code, or 'network', 'bad_message', 'handler', 'timeout' (dead link). */
  code: ErrorCode | 'network' | 'bad_message' | 'handler' | 'timeout' | (string & {});
  message: string;
  /** The channel whose subscribe this error answered, or that was revoked, when known. */
  channel?: string;
}

/** The clock the reconnect and heartbeat logic use; inject a fake one in tests. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: any): void;
}

/** The part of the WebSocket API the client uses; the browser's WebSocket fits. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Where the positions are kept across reloads: sessionStorage, localStorage fit. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** What tells the client the browser went offline or online: window fits. */
export interface NetworkEvents {
  addEventListener(type: 'online' | 'offline', listener: () => void): void;
  removeEventListener(type: 'online' | 'offline', listener: () => void): void;
}

/**
 * How numbers in messages are read. 'number': JSON.parse (big integers and long
 * numerics are rounded); 'string': a number a JS number would not keep exactly
 * arrives as its text (integers beyond 2^53 - 1, 12345678901234567.89); 'bigint':
 * the same but such integers as BigInt; a function: called with every number's text.
 */
export type NumberMode = 'number' | 'string' | 'bigint' | ((text: string) => unknown);

export interface ConnectOptions {
  /** ws:// or wss:// URL, or a path resolved against location. Default: same origin /ws. */
  url?: string;
  /** Default: globalThis.WebSocket. */
  WebSocket?: WebSocketConstructor;
  /** Default: Date.now and the global timers. */
  clock?: Clock;
  /** Default: Math.random; used for the backoff jitter. */
  random?: () => number;
  /** Backoff cap of the first retry, ms. Default 1000. */
  minDelay?: number;
  /** Largest backoff cap, ms. Default 30000. */
  maxDelay?: number;
  /** A connection up this long (ms) resets the backoff. Default 10000. */
  stableAfter?: number;
  /** Silence (ms) after which the client sends {"type":"ping"}. Default 20000; 0 turns the heartbeat off. */
  pingInterval?: number;
  /** No message this long (ms) after a ping: the link is dead, reconnect. Default 10000. */
  pongTimeout?: number;
  /** online/offline events. Default: globalThis when it has addEventListener; null: none. */
  network?: NetworkEvents | null;
  /** Keeps the last event id of each channel, so a reload resumes (e.g. sessionStorage). */
  storage?: StorageLike | null;
  /** The storage key. Default 'shopstream.positions'. */
  storageKey?: string;
  /** Default 'number'. */
  numbers?: NumberMode;
  onState?: (state: ConnectionState) => void;
  /** The server no longer has the events since our position: reload the data. */
  onResync?: (channel: string) => void;
  onError?: (error: ClientError) => void;
  /** Closed with 1008: the session is gone. The client stops. */
  onLoginRequired?: (reason: string) => void;
  /** Every message the server sends, before the client handles it. */
  onMessage?: (msg: ServerMessage) => void;
}

export interface SubscribeOptions<C extends Channel = Channel, R extends object = RowOf<C>> {
  filter?: Filter<R> | null;
  actions?: readonly Action[] | null;
  /** Resume after this event id (a decimal string) instead of subscribing afresh. */
  since?: string | number | bigint | null;
  /** The event callback, when not given as subscribe's last argument. */
  onEvent?: (event: ChannelEvent<C, R>) => void;
  /** This subscription's state changed. */
  onState?: (state: SubscriptionState, subscription: Subscription<C, R>) => void;
  /** Called (besides ConnectOptions.onResync) when this channel must reload. */
  onResync?: (channel: C, subscription: Subscription<C, R>) => void;
}

/** A subscription: call it (or its unsubscribe) to end it. */
export interface Subscription<C extends Channel = Channel, R extends object = RowOf<C>> {
  (): void;
  unsubscribe(): void;
  readonly channel: C;
  readonly state: SubscriptionState;
  /** The server's refusal or revocation while state is 'error', else null. */
  readonly error: ServerError | null;
  /** The last event id seen (or the position subscribed at): where a resume starts. */
  readonly position: string | null;
  /**
   * How the last subscribe went: null fresh, 'exact' resumed from position with
   * nothing missed, 'resync' the server no longer had the events (reload).
   */
  readonly resumed: 'exact' | 'resync' | null;
}

export interface Client {
  readonly state: ConnectionState;
  /**
   * Subscribes (or replaces the subscription of) channel. Survives reconnects,
   * resuming from the last event id. Row type: subscribe<'order_changes', MyOrder>.
   */
  subscribe<C extends Channel, R extends object = RowOf<C>>(
    channel: C,
    options: SubscribeOptions<C, R> | null | undefined,
    onEvent: (event: ChannelEvent<C, R>) => void,
  ): Subscription<C, R>;
  subscribe<C extends Channel, R extends object = RowOf<C>>(
    channel: C,
    onEvent: (event: ChannelEvent<C, R>) => void,
  ): Subscription<C, R>;
  subscribe<C extends Channel, R extends object = RowOf<C>>(
    channel: C,
    options: SubscribeOptions<C, R> & { onEvent: (event: ChannelEvent<C, R>) => void },
  ): Subscription<C, R>;
  /** The resume position (last event id) of each subscribed channel. */
  positions(): Partial<Record<Channel, string>>;
  /** Reconnects now (a new socket, resuming), also after login-required; not after close(). */
  reconnect(): void;
  /** Closes the socket for good. */
  close(): void;
}

export declare function connect(options?: ConnectOptions): Client;

/** A number's text as a number when it keeps its value exactly, else the text (or a BigInt with 'bigint'). */
export declare function exactNumber(text: string, mode?: 'string' | 'bigint'): number | string | bigint;
/** JSON.parse that keeps numbers exact (see NumberMode); throws SyntaxError on invalid JSON. */
export declare function parseJSON(text: string, numbers?: 'string' | 'bigint' | ((text: string) => unknown)): unknown;

/** Full-jitter delay (ms) before reconnect attempt `attempt` (0-based). */
export declare function backoffDelay(
  attempt: number,
  options?: { minDelay?: number; maxDelay?: number; random?: () => number },
): number;

export type Plural<E extends string> = E extends 'order'
  ? 'orders'
  : E extends 'product'
    ? 'products'
    : E extends 'customer'
      ? 'customers'
      : E extends 'shipment'
        ? 'shipments'
        : E extends 'transaction'
          ? 'transactions'
          : `${E}s`;

export type QueryKey = [string] | [string, JSONValue];

export declare function pluralize<E extends string>(entity: E): Plural<E>;
export declare function parseEventName(name: string): [entity: string, action: string];
/** order:updated with data.id 123 → [['orders'], ['orders', 123]]. */
export declare function queryKeysFor(event: Pick<EventMessage<string>, 'event' | 'data'>): QueryKey[];

/** The part of TanStack Query's QueryClient used here. */
export interface InvalidatingClient {
  invalidateQueries(filters: { queryKey: readonly unknown[] }): unknown;
}
/** Invalidates queryKeysFor(event) on queryClient; returns the keys. */
export declare function invalidateQueries(queryClient: InvalidatingClient, event: Pick<EventMessage<string>, 'event' | 'data'>): QueryKey[];

// Type declarations for /shopstream.js, the shopstream browser client.

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

export type Entity = 'order' | 'product' | 'customer' | 'shipment' | 'transaction';
export type Action = 'created' | 'updated' | 'deleted' | 'truncated';
export type Channel =
  | 'order_changes'
  | 'product_changes'
  | 'customer_changes'
  | 'shipment_changes'
  | 'transaction_changes';
export type EventName = `${Entity}:${Action}`;

/** A JSON value as PostgreSQL's row_to_json gives it. */
export type JSONValue = string | number | boolean | null | JSONValue[] | { [key: string]: JSONValue };
export type Row = { [column: string]: JSONValue };

/** field → value, or → list of values (any of); all fields must match. */
export type Filter = Record<string, JSONValue | JSONValue[]>;

export interface EventMessage<Name extends string = EventName, Data extends Row = Row> {
  type: 'event';
  /** Decimal string, increasing in commit order across all channels. */
  id: string;
  channel: Channel | string;
  event: Name;
  /**
   * The row after the change (before it for deleted, {} for truncated),
   * without secret columns. Updates carry changed_fields: the new values.
   */
  data: Data & { changed_fields?: Row };
  /** Old values of the changed fields (updates only). */
  previous?: Row;
  /**
   * The changed fields of an update whose row has a column named
   * changed_fields (data.changed_fields is then that column's value).
   * Absent otherwise: they are in data.changed_fields.
   */
  changed_fields?: Row;
  actor?: string;
  /** UTC ISO-8601 with milliseconds. */
  timestamp: string;
}

export type OrderEvent = EventMessage<`order:${Action}`>;
export type ProductEvent = EventMessage<`product:${Action}`>;
export type CustomerEvent = EventMessage<`customer:${Action}`>;
export type ShipmentEvent = EventMessage<`shipment:${Action}`>;
export type TransactionEvent = EventMessage<`transaction:${Action}`>;
export type ShopEvent = OrderEvent | ProductEvent | CustomerEvent | ShipmentEvent | TransactionEvent;

export type ServerMessage =
  | { type: 'connected'; message: string; userId: number }
  | { type: 'subscribed'; channel: string; position: string }
  | { type: 'unsubscribed'; channel: string }
  | { type: 'pong'; timestamp: string }
  | { type: 'resync_required'; channel: string }
  | { type: 'error'; code: ErrorCode; message: string }
  | EventMessage<string>;

export type ErrorCode =
  | 'invalid_request'
  | 'unknown_channel'
  | 'forbidden'
  | 'subscription_limit'
  | 'rate_limited'
  | 'internal_error';

/**
 * connecting: first attempt; live: connected and every subscription confirmed;
 * reconnecting: the socket dropped, waiting or retrying; login-required: closed
 * with 1008, no more attempts; closed: client.close() was called.
 */
export type ConnectionState = 'connecting' | 'live' | 'reconnecting' | 'login-required' | 'closed';

export interface ClientError {
  /** A server error code, or 'network', 'bad_message', 'handler'. */
  code: ErrorCode | 'network' | 'bad_message' | 'handler' | string;
  message: string;
  /** The channel whose subscribe this error answered, when known. */
  channel?: string;
}

/** The clock the reconnect logic uses; inject a fake one in tests. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

/** The part of the WebSocket API the client uses. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onopen?: ((ev: unknown) => void) | null;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

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
  onState?: (state: ConnectionState) => void;
  /** The server no longer has the events since our position: reload the data. */
  onResync?: (channel: string) => void;
  onError?: (error: ClientError) => void;
  /** Closed with 1008: the session is gone. The client stops. */
  onLoginRequired?: (reason: string) => void;
  /** Every message the server sends, before the client handles it. */
  onMessage?: (msg: ServerMessage) => void;
}

export interface SubscribeOptions {
  filter?: Filter | null;
  actions?: Action[] | null;
  /** Called (besides ConnectOptions.onResync) when this channel must reload. */
  onResync?: (channel: string) => void;
}

export interface Client {
  readonly state: ConnectionState;
  /**
   * Subscribes (or replaces the subscription of) channel; returns the
   * unsubscribe function. Survives reconnects, resuming from the last event id.
   */
  subscribe<E extends EventMessage<string> = ShopEvent>(
    channel: Channel | string,
    options: SubscribeOptions,
    onEvent: (event: E) => void,
  ): () => void;
  subscribe<E extends EventMessage<string> = ShopEvent>(channel: Channel | string, onEvent: (event: E) => void): () => void;
  /** The resume position (last event id) of each subscribed channel. */
  positions(): Record<string, string>;
  /** Closes the socket for good. */
  close(): void;
}

export declare function connect(options?: ConnectOptions): Client;

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

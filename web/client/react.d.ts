// Type declarations of @shopstream/client/react (react.js): the useShopstream
// hook and the React-free parts it is built from (react-core.js).
import type {
  Channel,
  ChannelEvent,
  Client,
  ClientError,
  ConnectOptions,
  ConnectionState,
  EventMessage,
  InvalidatingClient,
  SubscribeOptions,
} from './shopstream.js';

/** How long events are collected before their keys are invalidated: ms, or one animation frame. */
export type BatchWindow = number | 'frame';

/** Starts a window (fn runs at its end) and cancels one by the handle schedule returned. */
export interface WindowScheduler {
  schedule(fn: () => void): unknown;
  cancel?(handle: any): void;
}

/** setTimeout(ms), or requestAnimationFrame for 'frame' (16 ms where there is none). */
export declare function windowScheduler(batch?: BatchWindow): Required<WindowScheduler>;

export interface InvalidationBatcherOptions {
  /** Invalidates one key, e.g. (queryKey) => queryClient.invalidateQueries({ queryKey }). */
  invalidate: (queryKey: unknown[]) => unknown;
  /** Default: a 50 ms timer. */
  schedule?: (fn: () => void) => unknown;
  cancel?: (handle: any) => void;
  /** The keys of an event. Default queryKeysFor: ['orders'], ['orders', 123]. */
  keysFor?: (event: Pick<EventMessage<string>, 'event' | 'data'>) => readonly (readonly unknown[])[];
  /** invalidate threw or its promise rejected. */
  onError?: (error: unknown) => void;
}

export interface InvalidationBatcher {
  /** Adds a key to this window; false when a pending key covers it (or closed). [] covers all. */
  add(queryKey: readonly unknown[]): boolean;
  /** Adds keysFor(event). */
  addEvent(event: Pick<EventMessage<string>, 'event' | 'data'>): void;
  /** Invalidates the pending keys now; returns them. */
  flush(): unknown[][];
  /** The pending keys, covering prefixes only. */
  keys(): unknown[][];
  readonly pending: number;
  readonly closed: boolean;
  /** Cancels the pending flush; later adds are ignored. */
  close(): void;
}

/**
 * Coalesces the keys added within one window into distinct keys, a key under a
 * pending prefix dropped: 1,000 order:updated events give one ['orders'].
 */
export declare function createInvalidationBatcher(options: InvalidationBatcherOptions): InvalidationBatcher;

/** What may be set per channel (read when the hook connects). */
export type ChannelSubscribeOptions<C extends Channel> = Pick<SubscribeOptions<C>, 'filter' | 'actions' | 'since'>;

export interface UseShopstreamOptions<C extends Channel = Channel>
  extends Omit<ConnectOptions, 'onState' | 'onError' | 'onResync' | 'onLoginRequired'> {
  /** Default: useQueryClient() (the QueryClientProvider's). */
  queryClient?: InvalidatingClient;
  /** Default 50 (ms). */
  batch?: BatchWindow;
  /** Replaces batch: your own window (tests). */
  schedule?: WindowScheduler;
  /** filter, actions, since per channel; a change (by value) reconnects. */
  subscribe?: { [K in C]?: ChannelSubscribeOptions<K> };
  /** Every event, after its keys were queued. */
  onEvent?: (event: ChannelEvent<C>) => void;
  /** The server lost our place on channel: every query is invalidated, then this. */
  onResync?: (channel: C) => void;
  /** Closed with 1008: the session is gone. The hook never navigates: do it here. */
  onLoginRequired?: (reason: string) => void;
  onState?: (state: ConnectionState) => void;
  onError?: (error: ClientError) => void;
  /** Default: connect from @shopstream/client. */
  connect?: (options: ConnectOptions) => Client;
}

export interface ShopstreamConnection {
  /** 'connecting' until the client reports otherwise; 'login-required' after 1008. */
  state: ConnectionState;
  /** The client (null before the first effect ran). */
  client: Client | null;
}

/**
 * Connects while the component is mounted, subscribes channels and invalidates
 * the queries their events touch, batched. Reconnects only when the channels
 * (by name), url, subscribe (by value) or the QueryClient change; callbacks are
 * always the latest ones. Closes the client on unmount.
 */
export declare function useShopstream<C extends Channel>(
  channels: readonly C[],
  options?: UseShopstreamOptions<C>,
): ShopstreamConnection;

export interface ShopstreamBinding {
  readonly client: Client;
  readonly batcher: InvalidationBatcher;
  readonly state: ConnectionState;
  /** Cancels the pending invalidations and closes the client; no callback after. */
  close(): void;
}

/** What useShopstream runs in its effect: one client bound to queryClient. */
export declare function createShopstreamBinding<C extends Channel>(args: {
  channels: readonly C[];
  queryClient: InvalidatingClient;
  /** Read at connect (connect and subscribe options) and at every callback. */
  options?: () => UseShopstreamOptions<C>;
}): ShopstreamBinding;

/** The dependency the hook keys its effect on: channel names, url, subscribe by value. */
export declare function bindingKey(channels: readonly string[], options?: { url?: string; subscribe?: unknown }): string;

/** The React hooks useShopstream uses. */
export interface ReactHooks {
  useState<S>(initial: S): [S, (value: S) => void];
  useEffect(effect: () => void | (() => void), deps?: readonly unknown[]): void;
  useRef<T>(initial: T): { current: T };
}

/** useShopstream built from the given hooks (react.js passes React's and TanStack Query's). */
export declare function makeUseShopstream(
  react: ReactHooks,
  useQueryClient?: ((queryClient?: any) => InvalidatingClient) | null,
): typeof useShopstream;

// Type fixture of @shopstream/client: `make typecheck` runs tsc --strict over
// it. Lines after `// @ts-expect-error` must NOT compile: tsc fails if they do.
import {
  connect,
  invalidateQueries,
  parseJSON,
  type Channel,
  type ChannelEvent,
  type ChannelEvents,
  type ConnectionState,
  type OrderEvent,
  type ShopEvent,
  type Subscription,
  type SubscriptionState,
} from '@shopstream/client';

// The browser's own WebSocket, window and sessionStorage fit the options.
const client = connect({
  WebSocket,
  network: window,
  storage: sessionStorage,
  pingInterval: 15000,
  pongTimeout: 5000,
  numbers: 'string',
  onState: (s: ConnectionState) => void s,
  onError: (e) => void e.code,
});
connect({ WebSocket: globalThis.WebSocket, numbers: (text) => BigInt(text) });
connect({ WebSocket: window.WebSocket, network: null, storage: localStorage, url: '/ws' });
// @ts-expect-error not a WebSocket constructor
connect({ WebSocket: {} });
// @ts-expect-error no such number mode
connect({ numbers: 'decimal' });

// A channel's events are that channel's entity only.
client.subscribe('order_changes', (ev) => {
  const name: 'order:created' | 'order:updated' | 'order:deleted' | 'order:truncated' = ev.event;
  const ch: 'order_changes' = ev.channel;
  const id: string = ev.id;
  void [name, ch, id];
  // @ts-expect-error an order event is never a product event
  const p: `product:${string}` = ev.event;
  void p;
});

// Channel typos do not compile.
// @ts-expect-error unknown channel
client.subscribe('order_change', () => {});
// @ts-expect-error unknown channel
client.subscribe('orders', {}, () => {});

// Your row type, per call.
interface MyOrder {
  id: number;
  status: 'pending' | 'processing' | 'shipped';
  total: string; // numbers: 'string' keeps numerics exact
}
const orders = client.subscribe<'order_changes', MyOrder>(
  'order_changes',
  { filter: { status: ['pending', 'processing'] }, actions: ['created', 'updated'], since: '1042' },
  (ev) => {
    const status: MyOrder['status'] = ev.data.status;
    const before: MyOrder['status'] | undefined = ev.previous?.status;
    const changed = ev.changed_fields ?? ev.data.changed_fields;
    void [status, before, changed?.total];
    // @ts-expect-error not a column of MyOrder
    void ev.data.colour;
  },
);
// @ts-expect-error a filter on a field MyOrder lacks
client.subscribe<'order_changes', MyOrder>('order_changes', { filter: { colour: 'red' } }, () => {});
// @ts-expect-error a filter value of the wrong type
client.subscribe<'order_changes', MyOrder>('order_changes', { filter: { status: 'lost' } }, () => {});
// @ts-expect-error not an action
client.subscribe('order_changes', { actions: ['changed'] }, () => {});

// Or inferred from the callback's parameter.
client.subscribe('order_changes', {}, (ev: OrderEvent<MyOrder>) => void ev.data.total);

// The handle: state, position, resumed, error; callable to unsubscribe.
const st: SubscriptionState = orders.state;
const pos: string | null = orders.position;
const how: 'exact' | 'resync' | null = orders.resumed;
const code: string | undefined = orders.error?.code;
const ch: 'order_changes' = orders.channel;
void [st, pos, how, code, ch];
orders();
orders.unsubscribe();
const cleanup: () => void = orders; // a React effect can return it
void cleanup;
// @ts-expect-error read-only
orders.state = 'subscribed';
// @ts-expect-error no such state
const bad: typeof orders.state = 'live';
void bad;

// Per-subscription callbacks, and the event callback in the options.
client.subscribe('product_changes', {
  onEvent: (ev) => void (ev.event satisfies `product:${string}`),
  onState: (state, sub: Subscription<'product_changes'>) => void [state, sub.position],
  onResync: (channel: 'product_changes') => void channel,
});

// A channel only known at run time: the union of its events.
function follow(c: Channel) {
  return client.subscribe(c, (ev: ShopEvent) => void ev.event);
}
void follow;
const shipment: ChannelEvents['shipment_changes'] = {} as ChannelEvent<'shipment_changes'>;
void shipment;

// TanStack Query.
declare const queryClient: { invalidateQueries(filters?: { queryKey?: readonly unknown[] }): Promise<void> };
client.subscribe('customer_changes', (ev) => invalidateQueries(queryClient, ev));

const positions: Partial<Record<Channel, string>> = client.positions();
void positions;
client.reconnect();
client.close();
const v: unknown = parseJSON('{"id":12345678901234567890}', 'bigint');
void v;

// A hand-rolled hook, without React (@shopstream/client/react has the real one: react-usage.ts).
function useShopstream(channels = ['order_changes', 'product_changes'] as const) {
  const c = connect({ storage: sessionStorage, onResync: () => queryClient.invalidateQueries(), onLoginRequired: () => location.assign('/') });
  for (const ch of channels) c.subscribe(ch, (ev) => invalidateQueries(queryClient, ev));
  return () => c.close();
}
void useShopstream;

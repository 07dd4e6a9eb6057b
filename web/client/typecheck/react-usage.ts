// Type fixture of @shopstream/client/react against the real React and TanStack
// Query declarations (dev dependencies). `make typecheck` runs tsc --strict over it.
import * as React from 'react';
import { useEffect, useRef, useState } from 'react';
import { QueryClient, useQueryClient } from '@tanstack/react-query';
import type { Client, ConnectionState, OrderEvent } from '@shopstream/client';
import {
  createInvalidationBatcher,
  createShopstreamBinding,
  makeUseShopstream,
  useShopstream,
  windowScheduler,
  type InvalidationBatcher,
  type ShopstreamConnection,
  type UseShopstreamOptions,
} from '@shopstream/client/react';

// In a component: the channels are literals, the options callbacks typed.
export function LiveOrders(): null {
  const { state, client }: ShopstreamConnection = useShopstream(['order_changes', 'product_changes'], {
    storage: sessionStorage,
    numbers: 'string',
    batch: 'frame',
    subscribe: { order_changes: { filter: { status: ['pending', 'processing'] }, actions: ['created', 'updated'] } },
    onLoginRequired: (reason: string) => void reason, // navigate to the login page here
    onResync: (channel) => void (channel satisfies 'order_changes' | 'product_changes'),
    onEvent: (ev) => {
      const name: `order:${string}` | `product:${string}` = ev.event;
      void name;
      // @ts-expect-error not a channel of this hook
      const c: 'customer_changes' = ev.channel;
      void c;
    },
    onError: (e) => void e.code,
  });
  const s: ConnectionState = state;
  const c: Client | null = client;
  void [s, c];
  return null;
}

// A real QueryClient fits the queryClient option.
const queryClient = new QueryClient();
export function WithClient(): null {
  useShopstream(['customer_changes'], { queryClient, batch: 100, url: '/ws' });
  // @ts-expect-error unknown channel
  useShopstream(['order_change']);
  // @ts-expect-error not a batch window
  useShopstream(['order_changes'], { batch: 'tick' });
  // @ts-expect-error not an action
  useShopstream(['order_changes'], { subscribe: { order_changes: { actions: ['changed'] } } });
  // @ts-expect-error subscribe options only for the hook's channels
  useShopstream(['order_changes'], { subscribe: { product_changes: {} } });
  // @ts-expect-error onResync gets the hook's channels
  useShopstream(['order_changes'], { onResync: (c: 'product_changes') => void c });
  return null;
}

// The hook rebuilt from React's own hooks: the structural types fit the real ones.
const fromReact = makeUseShopstream(React, useQueryClient);
const fromHooks = makeUseShopstream({ useEffect, useRef, useState }, useQueryClient);
const noContext = makeUseShopstream(React);
void [fromReact, fromHooks, noContext];

// The batcher alone.
const batcher: InvalidationBatcher = createInvalidationBatcher({
  invalidate: (queryKey) => queryClient.invalidateQueries({ queryKey }),
  ...windowScheduler(50),
});
declare const order: OrderEvent;
batcher.addEvent(order);
batcher.add(['orders', 123]);
const flushed: unknown[][] = batcher.flush();
void flushed;
batcher.close();
// @ts-expect-error invalidate is required
createInvalidationBatcher({});

const binding = createShopstreamBinding({ channels: ['order_changes'], queryClient, options: () => ({ batch: 50 }) });
const bs: ConnectionState = binding.state;
void bs;
binding.close();
const opts: UseShopstreamOptions<'order_changes'> = { onResync: (ch: 'order_changes') => void ch };
void opts;

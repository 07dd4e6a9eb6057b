// Unit tests of @shopstream/client/react's logic (react-core.js): the
// invalidation batcher with a fake scheduler, the binding, and the hook driven
// by a tiny fake React. No DOM, no React. Run: node --test web/client/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createInvalidationBatcher, createShopstreamBinding, makeUseShopstream, bindingKey, windowScheduler } from '../react-core.js';

// FakeScheduler holds the windows until the test ends them.
function fakeScheduler() {
  const pending = new Map();
  let next = 1;
  return {
    schedule(fn) {
      const h = next++;
      pending.set(h, fn);
      return h;
    },
    cancel(h) {
      pending.delete(h);
    },
    get size() {
      return pending.size;
    },
    /** Ends every open window. */
    run() {
      const fns = [...pending.values()];
      pending.clear();
      for (const fn of fns) fn();
    },
  };
}

function recorder() {
  const calls = [];
  return { calls, invalidate: (queryKey) => void calls.push(queryKey) };
}

const ev = (id, channel, event, data) => ({ type: 'event', id: String(id), channel, event, data, timestamp: '2026-01-25T10:30:00.000Z' });

test('batcher: 1,000 order:updated events in one window invalidate ["orders"] once', () => {
  const s = fakeScheduler();
  const r = recorder();
  const b = createInvalidationBatcher({ invalidate: r.invalidate, schedule: s.schedule, cancel: s.cancel });
  for (let i = 1; i <= 1000; i++) b.addEvent(ev(i, 'order_changes', 'order:updated', { id: i }));
  assert.equal(r.calls.length, 0, 'nothing before the window ends');
  assert.equal(s.size, 1, 'one window scheduled');
  s.run();
  assert.deepEqual(r.calls, [['orders']]);
});

test('batcher: distinct keys once each, a covered key dropped whichever comes first', () => {
  const s = fakeScheduler();
  const r = recorder();
  const b = createInvalidationBatcher({ invalidate: r.invalidate, schedule: s.schedule, cancel: s.cancel });
  assert.equal(b.add(['orders', 1]), true);
  assert.equal(b.add(['orders', 1]), false);
  b.add(['orders', '1']); // a string id is another key
  b.add(['products', 7, 'reviews']);
  b.add(['products', 7]); // covers the one above
  b.add(['products', 7, 'x']);
  b.add(['customers', 3n]);
  b.add(['customers', 3n]);
  s.run();
  assert.deepEqual(r.calls, [['orders', 1], ['orders', '1'], ['products', 7], ['customers', 3n]]);
  // [] covers everything (a resync).
  b.add(['orders', 5]);
  b.add([]);
  assert.equal(b.add(['products']), false);
  s.run();
  assert.deepEqual(r.calls.slice(4), [[]]);
});

test('batcher: a mixed burst of 2,000 events over two channels gives 2 calls', () => {
  const s = fakeScheduler();
  const r = recorder();
  const b = createInvalidationBatcher({ invalidate: r.invalidate, schedule: s.schedule, cancel: s.cancel });
  for (let i = 1; i <= 1000; i++) {
    b.addEvent(ev(i, 'order_changes', 'order:updated', { id: i }));
    b.addEvent(ev(i, 'product_changes', 'product:created', { id: i }));
  }
  s.run();
  assert.deepEqual(r.calls, [['orders'], ['products']]);
});

test('batcher: each window is flushed on its own', () => {
  const s = fakeScheduler();
  const r = recorder();
  const b = createInvalidationBatcher({ invalidate: r.invalidate, schedule: s.schedule, cancel: s.cancel });
  b.addEvent(ev(1, 'order_changes', 'order:updated', { id: 1 }));
  b.addEvent(ev(2, 'order_changes', 'order:updated', { id: 2 }));
  s.run();
  assert.deepEqual(r.calls, [['orders']]);
  assert.equal(s.size, 0);
  b.addEvent(ev(3, 'order_changes', 'order:deleted', { id: 3 }));
  b.addEvent(ev(4, 'shipment_changes', 'shipment:created', { id: 9 }));
  assert.equal(s.size, 1, 'a new window for the next events');
  s.run();
  assert.deepEqual(r.calls, [['orders'], ['orders'], ['shipments']]);
  s.run();
  assert.equal(r.calls.length, 3, 'an empty window invalidates nothing');
});

test('batcher: close cancels the pending flush and ignores later events', () => {
  const s = fakeScheduler();
  const r = recorder();
  const b = createInvalidationBatcher({ invalidate: r.invalidate, schedule: s.schedule, cancel: s.cancel });
  b.addEvent(ev(1, 'order_changes', 'order:updated', { id: 1 }));
  assert.equal(s.size, 1);
  b.close();
  assert.equal(s.size, 0, 'the window was cancelled');
  b.addEvent(ev(2, 'order_changes', 'order:updated', { id: 2 }));
  assert.equal(s.size, 0);
  s.run();
  assert.deepEqual(r.calls, []);
});

test('batcher: flush now; a throwing or rejecting invalidate goes to onError, the rest still run', async () => {
  const s = fakeScheduler();
  const errors = [];
  const seen = [];
  const b = createInvalidationBatcher({
    invalidate: (k) => {
      seen.push(k[0]);
      if (k[0] === 'a') throw new Error('boom');
      if (k[0] === 'b') return Promise.reject(new Error('later'));
      return Promise.resolve();
    },
    schedule: s.schedule,
    cancel: s.cancel,
    onError: (e) => errors.push(e.message),
  });
  b.add(['a']);
  b.add(['b']);
  b.add(['c']);
  assert.equal(b.pending, 3);
  assert.deepEqual(b.flush(), [['a'], ['b'], ['c']]);
  assert.equal(s.size, 0, 'flush cancels the window');
  assert.deepEqual(seen, ['a', 'b', 'c']);
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(errors, ['boom', 'later']);
});

test('windowScheduler: real timers flush once per window; frame without requestAnimationFrame is 16 ms', async () => {
  const r = recorder();
  const b = createInvalidationBatcher({ invalidate: r.invalidate, ...windowScheduler(5) });
  for (let i = 1; i <= 1000; i++) b.addEvent(ev(i, 'order_changes', 'order:updated', { id: i }));
  assert.deepEqual(r.calls, []);
  await new Promise((res) => setTimeout(res, 30));
  assert.deepEqual(r.calls, [['orders']]);
  const f = createInvalidationBatcher({ invalidate: r.invalidate, ...windowScheduler('frame') });
  f.add(['products']);
  await new Promise((res) => setTimeout(res, 40));
  assert.deepEqual(r.calls, [['orders'], ['products']]);
  assert.throws(() => windowScheduler(-1), TypeError);
  assert.throws(() => windowScheduler('tick'), TypeError);
});

// A fake client: records subscribe calls and lets the test fire callbacks.
function fakeConnect() {
  const clients = [];
  function connect(options) {
    const c = {
      options,
      state: 'connecting',
      subs: [],
      closed: false,
      subscribe(channel, opts, onEvent) {
        this.subs.push({ channel, opts, onEvent });
        return () => {};
      },
      positions: () => ({}),
      reconnect() {},
      close() {
        this.closed = true;
        this.state = 'closed';
        options.onState?.('closed');
      },
      // Test side.
      setState(s) {
        this.state = s;
        options.onState?.(s);
      },
      emit(e) {
        for (const s of this.subs) if (s.channel === e.channel) s.onEvent(e);
      },
    };
    clients.push(c);
    options.onState?.('connecting');
    return c;
  }
  return { clients, connect };
}

test('binding: subscribes, batches events into one invalidation, resync invalidates all, close cancels', () => {
  const s = fakeScheduler();
  const { clients, connect } = fakeConnect();
  const qc = { calls: [], invalidateQueries(f) { this.calls.push(f.queryKey); } };
  const events = [];
  const logins = [];
  const b = createShopstreamBinding({
    channels: ['order_changes', 'product_changes'],
    queryClient: qc,
    options: () => ({
      connect, schedule: s, url: 'ws://shop.test/ws', subscribe: { order_changes: { filter: { status: 'pending' } } },
      onEvent: (e) => events.push(e.id), onLoginRequired: (r) => logins.push(r),
    }),
  });
  const c = clients[0];
  assert.equal(c.options.url, 'ws://shop.test/ws');
  assert.equal(c.options.schedule, undefined, 'own options are not passed to connect');
  assert.deepEqual(c.subs.map((x) => [x.channel, x.opts]), [['order_changes', { filter: { status: 'pending' } }], ['product_changes', {}]]);
  for (let i = 1; i <= 1000; i++) c.emit(ev(i, 'order_changes', 'order:updated', { id: i }));
  assert.equal(events.length, 1000);
  assert.equal(qc.calls.length, 0);
  s.run();
  assert.deepEqual(qc.calls, [['orders']]);
  c.options.onResync('product_changes');
  s.run();
  assert.deepEqual(qc.calls, [['orders'], []]);
  c.options.onLoginRequired('authentication required');
  assert.deepEqual(logins, ['authentication required']);
  c.emit(ev(1001, 'order_changes', 'order:updated', { id: 1 }));
  assert.equal(s.size, 1);
  b.close();
  assert.equal(c.closed, true);
  assert.equal(s.size, 0, 'close cancelled the pending flush');
  assert.deepEqual(qc.calls, [['orders'], []]);
});

test('bindingKey: channel names, url and subscribe by value', () => {
  assert.equal(bindingKey(['a', 'b']), bindingKey(['a', 'b'], {}));
  assert.notEqual(bindingKey(['a', 'b']), bindingKey(['b', 'a']));
  assert.equal(bindingKey(['a'], { subscribe: { a: { filter: { x: 1 } } } }), bindingKey(['a'], { subscribe: { a: { filter: { x: 1 } } } }));
  assert.notEqual(bindingKey(['a'], { subscribe: { a: { filter: { x: 1 } } } }), bindingKey(['a'], { subscribe: { a: { filter: { x: 2 } } } }));
  assert.notEqual(bindingKey(['a'], { url: '/ws' }), bindingKey(['a'], { url: '/other' }));
  assert.doesNotThrow(() => bindingKey(['a'], { subscribe: { a: { since: 10n } } }));
});

// A tiny React: one component, hooks by call order, effects after render with
// dependency comparison, cleanups on unmount.
function fakeReact() {
  const slots = [];
  let i = 0;
  let effects = [];
  let renders = 0;
  let component = null;
  let props = null;
  const React = {
    useState(initial) {
      const k = i++;
      if (!(k in slots)) slots[k] = { value: initial };
      const slot = slots[k];
      return [slot.value, (v) => {
        if (Object.is(slot.value, v)) return;
        slot.value = v;
        if (mounted) queueMicrotask(() => mounted && render(props));
      }];
    },
    useRef(initial) {
      const k = i++;
      if (!(k in slots)) slots[k] = { current: initial };
      return slots[k];
    },
    useEffect(fn, deps) {
      const k = i++;
      const prev = slots[k];
      const changed = !prev || !deps || deps.length !== prev.deps.length || deps.some((d, j) => !Object.is(d, prev.deps[j]));
      if (!prev) slots[k] = { deps, cleanup: undefined };
      if (changed) effects.push(() => {
        const slot = slots[k];
        if (typeof slot.cleanup === 'function') slot.cleanup();
        slot.deps = deps;
        slot.cleanup = fn();
      });
    },
  };
  let mounted = false;
  let result;
  function render(p) {
    props = p;
    i = 0;
    renders++;
    result = component(p);
    mounted = true;
    const run = effects;
    effects = [];
    for (const e of run) e();
    return result;
  }
  return {
    React,
    mount(c, p) {
      component = c;
      return render(p);
    },
    render,
    get result() {
      return result;
    },
    get renders() {
      return renders;
    },
    unmount() {
      mounted = false;
      for (const s of slots) if (s && typeof s.cleanup === 'function') s.cleanup();
    },
  };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

test('hook: no reconnect on re-render with a new channels array; reconnect on other channels; close on unmount', async () => {
  const r = fakeReact();
  const s = fakeScheduler();
  const { clients, connect } = fakeConnect();
  const qc = { calls: [], invalidateQueries(f) { this.calls.push(f.queryKey); } };
  let contextAsked = 0;
  const useShopstream = makeUseShopstream(r.React, (given) => (contextAsked++, given ?? qc));
  const logins = [];
  const App = ({ channels, onLoginRequired }) => useShopstream(channels, { connect, schedule: s, onLoginRequired });
  r.mount(App, { channels: ['order_changes', 'product_changes'], onLoginRequired: (x) => logins.push(['first', x]) });
  assert.equal(clients.length, 1);
  await tick();
  assert.equal(r.result.state, 'connecting');
  assert.equal(r.result.client, clients[0]);
  assert.ok(contextAsked > 0, 'useQueryClient is called');

  // New array literal, new callback: same client, the new callback is used.
  r.render({ channels: ['order_changes', 'product_changes'], onLoginRequired: (x) => logins.push(['second', x]) });
  r.render({ channels: ['order_changes', 'product_changes'], onLoginRequired: (x) => logins.push(['second', x]) });
  assert.equal(clients.length, 1, 'no reconnect');
  assert.equal(clients[0].closed, false);

  clients[0].setState('live');
  await tick();
  assert.equal(r.result.state, 'live');

  for (let i = 1; i <= 1000; i++) clients[0].emit(ev(i, 'order_changes', 'order:updated', { id: i }));
  s.run();
  assert.deepEqual(qc.calls, [['orders']]);

  // 1008: the callback, the state; nothing navigates (there is no location here).
  clients[0].options.onLoginRequired('authentication required');
  clients[0].setState('login-required');
  await tick();
  assert.deepEqual(logins, [['second', 'authentication required']]);
  assert.equal(r.result.state, 'login-required');

  // Other channels: the old client closes, a new one subscribes them.
  r.render({ channels: ['shipment_changes'], onLoginRequired: () => {} });
  assert.equal(clients.length, 2);
  assert.equal(clients[0].closed, true);
  assert.deepEqual(clients[1].subs.map((x) => x.channel), ['shipment_changes']);
  await tick();
  assert.equal(r.result.client, clients[1]);
  assert.equal(r.result.state, 'connecting');

  clients[1].emit(ev(5, 'shipment_changes', 'shipment:updated', { id: 5 }));
  assert.equal(s.size, 1);
  r.unmount();
  assert.equal(clients[1].closed, true, 'closed on unmount');
  assert.equal(s.size, 0, 'unmount cancelled the pending flush');
  assert.deepEqual(qc.calls, [['orders']]);
});

test('hook: the queryClient option wins over the context', () => {
  const r = fakeReact();
  const { clients, connect } = fakeConnect();
  const s = fakeScheduler();
  const mine = { calls: [], invalidateQueries(f) { this.calls.push(f.queryKey); } };
  const useShopstream = makeUseShopstream(r.React, (given) => given ?? { invalidateQueries: () => assert.fail('context client used') });
  r.mount(() => useShopstream(['order_changes'], { connect, schedule: s, queryClient: mine }), {});
  clients[0].emit(ev(1, 'order_changes', 'order:created', { id: 1 }));
  s.run();
  assert.deepEqual(mine.calls, [['orders']]);
  r.unmount();
});

test('hook with the real client and a fake socket: 1008 reaches the callback and the state', async () => {
  const r = fakeReact();
  const sockets = [];
  class WS {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.onmessage = this.onclose = this.onerror = null;
      sockets.push(this);
    }
    send() {}
    close() {
      this.readyState = 3;
    }
  }
  const qc = { invalidateQueries() {} };
  const useShopstream = makeUseShopstream(r.React, null);
  const logins = [];
  r.mount(() => useShopstream(['order_changes'], { url: 'ws://shop.test/ws', WebSocket: WS, network: null, queryClient: qc, onLoginRequired: (x) => logins.push(x) }), {});
  assert.equal(sockets.length, 1);
  sockets[0].readyState = 3;
  sockets[0].onclose({ code: 1008, reason: 'authentication required', wasClean: true });
  await tick();
  assert.deepEqual(logins, ['authentication required']);
  assert.equal(r.result.state, 'login-required');
  assert.equal(sockets.length, 1, 'no reconnect after 1008');
  r.unmount();
});

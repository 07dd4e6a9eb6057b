// The logic behind @shopstream/client/react (react.js), free of React and
// TanStack Query so Node tests can drive it: the invalidation batcher, the
// binding of one client to a QueryClient, and the hook built from a React passed
// in (react.js passes the real one).
import { connect, queryKeysFor } from './shopstream.js';

/** A key part as text, distinct per type: 123, "123" and 123n differ. */
function partKey(v) {
  if (typeof v === 'bigint') return 'n' + v;
  try {
    return JSON.stringify(v) ?? 'u';
  } catch {
    return 's' + String(v);
  }
}

/**
 * The scheduler of a batch window: a number of ms (setTimeout), or 'frame'
 * (requestAnimationFrame where there is one, else 16 ms).
 */
export function windowScheduler(batch = 50) {
  const g = globalThis;
  if (batch === 'frame' && typeof g.requestAnimationFrame === 'function') {
    return { schedule: (fn) => g.requestAnimationFrame(fn), cancel: (h) => g.cancelAnimationFrame(h) };
  }
  const ms = batch === 'frame' ? 16 : batch;
  if (typeof ms !== 'number' || !(ms >= 0)) throw new TypeError('shopstream: batch must be a number of ms or "frame"');
  return { schedule: (fn) => setTimeout(fn, ms), cancel: (h) => clearTimeout(h) };
}

/**
 * Collects query keys over one window and invalidates each distinct one once at
 * its end; a key under a prefix already collected is dropped (['orders'] covers
 * ['orders', 123]), and [] covers everything.
 *
 *   const b = createInvalidationBatcher({ invalidate: (queryKey) => qc.invalidateQueries({ queryKey }) });
 *   b.addEvent(ev); // queryKeysFor(ev): ['orders'], ['orders', 123]
 *
 * schedule(fn) starts the window (returns a handle for cancel); default a 50 ms
 * timer. invalidate may return a promise: a rejection goes to onError.
 */
export function createInvalidationBatcher({ invalidate, schedule, cancel, keysFor = queryKeysFor, onError } = {}) {
  if (typeof invalidate !== 'function') throw new TypeError('shopstream: createInvalidationBatcher needs invalidate');
  if (!schedule) ({ schedule, cancel } = windowScheduler(50));
  // A trie of the pending keys: a node with end set is a key to invalidate, and
  // has no children (they are covered).
  let root = null;
  let handle = null;
  let scheduled = false;
  let closed = false;
  let size = 0;

  const report = (err) => {
    if (onError) onError(err);
  };

  function add(queryKey) {
    if (closed) return false;
    if (!root) root = { end: false, kids: new Map() };
    let node = root;
    for (const part of queryKey) {
      if (node.end) return false; // covered by a shorter key
      const k = partKey(part);
      let next = node.kids.get(k);
      if (!next) {
        next = { end: false, kids: new Map(), part };
        node.kids.set(k, next);
      }
      node = next;
    }
    if (node.end) return false;
    node.end = true;
    node.kids.clear();
    size++;
    if (!scheduled) {
      scheduled = true;
      handle = schedule(flush);
    }
    return true;
  }

  /** The pending keys, shortest prefixes only, in the order first seen. */
  function keys() {
    const out = [];
    const walk = (node, path) => {
      if (node.end) out.push(path);
      else for (const kid of node.kids.values()) walk(kid, [...path, kid.part]);
    };
    if (root) walk(root, []);
    return out;
  }

  /** Invalidates the pending keys now; returns them. */
  function flush() {
    if (scheduled && cancel) cancel(handle);
    scheduled = false;
    handle = null;
    const list = keys();
    root = null;
    size = 0;
    for (const queryKey of list) {
      try {
        const r = invalidate(queryKey);
        if (r && typeof r.then === 'function') r.then(undefined, report);
      } catch (err) {
        report(err);
      }
    }
    return list;
  }

  return {
    /** Adds a key; false when it is already covered (or the batcher closed). */
    add,
    /** Adds keysFor(event). */
    addEvent(event) {
      for (const k of keysFor(event)) add(k);
    },
    flush,
    keys,
    /** Keys added (not covered) since the last flush; a covering key counts once. */
    get pending() {
      return size === 0 ? 0 : keys().length;
    },
    get closed() {
      return closed;
    },
    /** Drops the pending keys and the scheduled flush; later adds are ignored. */
    close() {
      if (scheduled && cancel) cancel(handle);
      scheduled = false;
      handle = null;
      root = null;
      size = 0;
      closed = true;
    },
  };
}

const OWN = new Set(['queryClient', 'batch', 'schedule', 'subscribe', 'onEvent', 'onResync', 'onLoginRequired', 'onState', 'onError', 'connect']);

/**
 * One client bound to a QueryClient: connects, subscribes channels, and batches
 * the invalidations of their events. options() is read for every callback, so
 * the latest callbacks are used; the connect and subscribe options are read once.
 * Returns { client, state, close() }.
 */
export function createShopstreamBinding({ channels, queryClient, options = () => ({}) }) {
  const opts = options() || {};
  const connectOptions = {};
  for (const k of Object.keys(opts)) if (!OWN.has(k)) connectOptions[k] = opts[k];
  const win = opts.schedule || windowScheduler(opts.batch ?? 50);
  let closed = false;
  const cb = (name) => {
    const o = options() || {};
    return closed ? undefined : o[name];
  };
  const call = (name, ...args) => {
    const f = cb(name);
    if (typeof f === 'function') f(...args);
  };
  const batcher = createInvalidationBatcher({
    invalidate: (queryKey) => queryClient.invalidateQueries({ queryKey }),
    schedule: win.schedule,
    cancel: win.cancel,
    onError: (err) => call('onError', { code: 'handler', message: String(err && err.message ? err.message : err) }),
  });
  const client = (opts.connect || connect)({
    ...connectOptions,
    onState: (s) => call('onState', s),
    onError: (e) => call('onError', e),
    // The server lost our place: everything may be stale ([] covers every query).
    onResync: (channel) => {
      batcher.add([]);
      call('onResync', channel);
    },
    // Never navigates: the app decides (a login form, location.assign, ...).
    onLoginRequired: (reason) => call('onLoginRequired', reason),
  });
  const perChannel = opts.subscribe || {};
  for (const channel of channels) {
    const { onEvent: _e, onState: _s, onResync: _r, ...sub } = perChannel[channel] || {};
    client.subscribe(channel, sub, (ev) => {
      batcher.addEvent(ev);
      call('onEvent', ev);
    });
  }
  return {
    client,
    batcher,
    get state() {
      return client.state;
    },
    /** Cancels the pending invalidations and closes the client; no callback after. */
    close() {
      if (closed) return;
      closed = true;
      batcher.close();
      client.close();
    },
  };
}

/** What in the options changes the connection: the channels, url, subscribe options. */
export function bindingKey(channels, options = {}) {
  let sub = '';
  try {
    sub = JSON.stringify(options.subscribe ?? null, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
  } catch {
    sub = String(options.subscribe);
  }
  return [channels.join(','), options.url ?? '', sub].join('\n');
}

/**
 * Builds useShopstream from React's hooks (useState, useEffect, useRef) and
 * TanStack Query's useQueryClient; react.js does this with the real ones.
 */
export function makeUseShopstream(React, useQueryClient) {
  return function useShopstream(channels, options = {}) {
    const queryClient = useQueryClient ? useQueryClient(options.queryClient) : options.queryClient;
    if (!queryClient) throw new Error('shopstream: useShopstream needs a QueryClient (options.queryClient or a QueryClientProvider)');
    const latest = React.useRef(options);
    // The latest callbacks, for events after this render (no reconnect).
    React.useEffect(() => {
      latest.current = options;
    });
    const [conn, setConn] = React.useState({ state: 'connecting', client: null });
    const key = bindingKey(channels, options);
    React.useEffect(() => {
      const names = [...new Set(key.split('\n')[0].split(',').filter(Boolean))];
      let binding = null;
      binding = createShopstreamBinding({
        channels: names,
        queryClient,
        options: () => ({
          ...latest.current,
          onState: (state) => {
            if (binding) setConn({ state, client: binding.client }); // else: during connect, set below
            const f = latest.current.onState;
            if (f) f(state);
          },
        }),
      });
      setConn({ state: binding.client.state, client: binding.client });
      return () => binding.close();
    }, [queryClient, key]);
    return conn;
  };
}

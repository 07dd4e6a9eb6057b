// shopstream browser client: a dependency-free ES module for the /ws protocol
// described in README.md ("The socket: GET /ws"). Types: shopstream.d.ts.
//
//   import { connect } from '/shopstream.js';
//   const client = connect({ onState: (s) => console.log(s) });
//   const stop = client.subscribe('order_changes', { filter: { status: ['pending'] } }, (ev) => ...);
//
// The socket uses the same-origin session cookie and asks for the
// `shopstream.batch` subprotocol: a frame may hold several messages, one per line.
// It reconnects with exponential backoff (full jitter) and resumes every channel
// from the last event id it saw there. A close with 1008 (no or ended session)
// stops it with the state "login-required".

export const BATCH_SUBPROTOCOL = 'shopstream.batch';

/** Close codes the server uses (README, "Limits and close codes"). */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001, // server shutting down: reconnect
  ABNORMAL: 1006, // network error, no close frame: reconnect
  POLICY_VIOLATION: 1008, // no or ended session: log in again
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011, // reconnect
  TRY_AGAIN_LATER: 1013, // our queue overflowed: reconnect and resume
});

const defaultClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id),
};

/**
 * The delay before reconnect attempt `attempt` (0 for the first): full jitter,
 * a uniform random value in [0, min(maxDelay, minDelay * 2^attempt)).
 */
export function backoffDelay(attempt, { minDelay = 1000, maxDelay = 30000, random = Math.random } = {}) {
  const cap = Math.min(maxDelay, minDelay * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}

function defaultURL() {
  const loc = globalThis.location;
  if (!loc) throw new Error('shopstream: connect() needs options.url outside a browser');
  return (loc.protocol === 'https:' ? 'wss://' : 'ws://') + loc.host + '/ws';
}

function resolveURL(url) {
  if (!url) return defaultURL();
  if (/^wss?:\/\//i.test(url)) return url;
  const loc = globalThis.location;
  if (!loc) return url;
  const u = new URL(url, loc.href);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.toString();
}

// Event ids are decimal strings; compare them without losing precision.
function idGreater(a, b) {
  if (b == null) return true;
  if (a.length !== b.length) return a.length > b.length;
  return a > b;
}

/**
 * Opens a shopstream socket that stays connected until close() or a 1008.
 * @param {import('./shopstream.d.ts').ConnectOptions} [options]
 * @returns {import('./shopstream.d.ts').Client}
 */
export function connect(options = {}) {
  const {
    url,
    WebSocket: WS = globalThis.WebSocket,
    clock = defaultClock,
    random = Math.random,
    minDelay = 1000,
    maxDelay = 30000,
    stableAfter = 10000,
    onState,
    onResync,
    onError,
    onLoginRequired,
    onMessage,
  } = options;
  if (typeof WS !== 'function') throw new Error('shopstream: no WebSocket constructor available');
  const target = resolveURL(url);

  /** channel → { filter, actions, handler, onResync, cursor } */
  const subs = new Map();
  let ws = null;
  let state = 'connecting';
  let attempt = 0; // failed attempts since the last stable connection
  let timer = null;
  let connectedAt = null; // clock.now() of the last "connected" message
  let greeted = false; // "connected" received on the current socket
  let pending = []; // subscribe requests awaiting "subscribed" or "error", in order
  let closed = false;

  function setState(s) {
    if (s === state) return;
    state = s;
    if (onState) onState(s);
  }

  function reportError(err) {
    if (onError) onError(err);
  }

  function send(msg) {
    if (!ws || !greeted || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  function sendSubscribe(channel, sub) {
    const msg = { type: 'subscribe', channel };
    if (sub.filter && Object.keys(sub.filter).length) msg.filter = sub.filter;
    if (sub.actions && sub.actions.length) msg.actions = sub.actions;
    if (sub.cursor != null && sub.resume) msg.since = sub.cursor;
    if (send(msg)) pending.push({ channel, since: msg.since ?? null });
  }

  function maybeLive() {
    if (greeted && pending.length === 0) setState('live');
  }

  function open() {
    timer = null;
    if (closed) return;
    greeted = false;
    pending = [];
    let sock;
    try {
      sock = new WS(target, [BATCH_SUBPROTOCOL]);
    } catch (err) {
      reportError({ code: 'network', message: String(err && err.message || err) });
      scheduleReconnect();
      return;
    }
    ws = sock;
    sock.onmessage = (ev) => {
      if (sock !== ws) return;
      const text = typeof ev.data === 'string' ? ev.data : String(ev.data);
      for (const line of text.split('\n')) {
        if (!line) continue;
        let msg;
        try {
          msg = JSON.parse(line);
        } catch {
          reportError({ code: 'bad_message', message: 'the server sent invalid JSON' });
          continue;
        }
        handle(msg);
      }
    };
    sock.onclose = (ev) => {
      if (sock !== ws) return;
      ws = null;
      greeted = false;
      pending = [];
      if (closed) return;
      if (connectedAt != null && clock.now() - connectedAt >= stableAfter) attempt = 0;
      connectedAt = null;
      if (ev.code === CloseCode.POLICY_VIOLATION) {
        closed = true;
        setState('login-required');
        if (onLoginRequired) onLoginRequired(ev.reason || 'login required');
        return;
      }
      scheduleReconnect();
    };
    sock.onerror = () => {
      // A close event always follows; it decides what to do.
    };
  }

  function scheduleReconnect() {
    if (closed || timer != null) return;
    setState('reconnecting');
    const delay = backoffDelay(attempt, { minDelay, maxDelay, random });
    attempt++;
    timer = clock.setTimeout(open, delay);
  }

  function handle(msg) {
    if (onMessage) onMessage(msg);
    switch (msg.type) {
      case 'connected':
        greeted = true;
        connectedAt = clock.now();
        for (const [channel, sub] of subs) sendSubscribe(channel, sub);
        maybeLive();
        break;
      case 'subscribed': {
        const i = pending.findIndex((p) => p.channel === msg.channel);
        const req = i >= 0 ? pending.splice(i, 1)[0] : null;
        const sub = subs.get(msg.channel);
        // A fresh subscription delivers everything after position: that is
        // where a later resume starts. A resumed one replays from since first.
        if (sub && req && req.since == null && typeof msg.position === 'string' && idGreater(msg.position, sub.cursor)) {
          sub.cursor = msg.position;
        }
        if (sub) {
          sub.resume = true;
          sub.position = msg.position;
        }
        maybeLive();
        break;
      }
      case 'event': {
        const sub = subs.get(msg.channel);
        if (!sub) break;
        if (typeof msg.id === 'string' && idGreater(msg.id, sub.cursor)) sub.cursor = msg.id;
        try {
          sub.handler(msg);
        } catch (err) {
          reportError({ code: 'handler', message: String(err && err.message || err), channel: msg.channel });
        }
        break;
      }
      case 'resync_required': {
        const sub = subs.get(msg.channel);
        // The events between our cursor and the position are gone: the caller
        // reloads, and the subscription goes on live from its position.
        if (sub && typeof sub.position === 'string' && idGreater(sub.position, sub.cursor)) sub.cursor = sub.position;
        if (sub && sub.onResync) sub.onResync(msg.channel);
        if (onResync) onResync(msg.channel);
        break;
      }
      case 'error': {
        // Errors answer one message; subscribes are answered in order.
        const req = pending.shift();
        if (req && req.since != null && msg.code === 'invalid_request') {
          // The log no longer knows our position (e.g. a new database):
          // subscribe afresh and tell the caller to reload.
          const sub = subs.get(req.channel);
          if (sub) {
            sub.cursor = null;
            sub.resume = false;
            sendSubscribe(req.channel, sub);
            if (sub.onResync) sub.onResync(req.channel);
          }
          if (onResync) onResync(req.channel);
        } else {
          reportError({ code: msg.code, message: msg.message, channel: req ? req.channel : undefined });
        }
        maybeLive();
        break;
      }
      default:
        break; // unsubscribed, pong
    }
  }

  const client = {
    get state() {
      return state;
    },
    subscribe(channel, opts = {}, onEvent) {
      if (typeof opts === 'function') {
        onEvent = opts;
        opts = {};
      }
      if (typeof onEvent !== 'function') throw new TypeError('shopstream: subscribe needs an event callback');
      const prev = subs.get(channel);
      const sub = {
        filter: opts.filter || null,
        actions: opts.actions || null,
        handler: onEvent,
        onResync: opts.onResync || null,
        cursor: prev ? prev.cursor : null,
        // Replaced while connected, it starts afresh at its new position (events
        // of the old one may still be in flight); replaced while disconnected,
        // it resumes where the old one stopped.
        resume: !!(prev && prev.resume && !greeted),
      };
      subs.set(channel, sub);
      if (greeted) sendSubscribe(channel, sub);
      return () => {
        if (subs.get(channel) !== sub) return; // already replaced or removed
        subs.delete(channel);
        send({ type: 'unsubscribe', channel });
      };
    },
    /** The last event id seen on each subscribed channel. */
    positions() {
      const out = {};
      for (const [channel, sub] of subs) if (sub.cursor != null) out[channel] = sub.cursor;
      return out;
    },
    close() {
      if (closed && !ws) return;
      closed = true;
      if (timer != null) clock.clearTimeout(timer);
      timer = null;
      const sock = ws;
      ws = null;
      if (sock) {
        try {
          sock.close(CloseCode.NORMAL, 'client closed');
        } catch {
          /* already closing */
        }
      }
      setState('closed');
    },
  };

  if (onState) onState(state);
  open();
  return client;
}

const PLURAL = { order: 'orders', product: 'products', customer: 'customers', shipment: 'shipments', transaction: 'transactions' };

/** "order" → "orders"; unknown entities get an "s". */
export function pluralize(entity) {
  return PLURAL[entity] || entity + 's';
}

/** Splits "order:updated" into ["order", "updated"]. */
export function parseEventName(name) {
  const i = name.indexOf(':');
  return i < 0 ? [name, ''] : [name.slice(0, i), name.slice(i + 1)];
}

/**
 * The TanStack Query keys an event invalidates: `order:updated` with data.id 123
 * gives [['orders'], ['orders', 123]]; a truncate gives only [['orders']].
 */
export function queryKeysFor(event) {
  const [entity] = parseEventName(event.event);
  const plural = pluralize(entity);
  const keys = [[plural]];
  const id = event.data && event.data.id;
  if (id !== undefined && id !== null) keys.push([plural, id]);
  return keys;
}

/**
 * Invalidates the queries an event touches:
 *   client.subscribe('order_changes', {}, (ev) => invalidateQueries(queryClient, ev));
 */
export function invalidateQueries(queryClient, event) {
  const keys = queryKeysFor(event);
  for (const queryKey of keys) queryClient.invalidateQueries({ queryKey });
  return keys;
}

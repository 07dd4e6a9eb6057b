// shopstream browser client: a dependency-free ES module for the /ws protocol
// described in the repository's README.md ("The socket: GET /ws"). Types:
// shopstream.d.ts. It is the npm package @shopstream/client (web/client), and
// the service serves this same file at /shopstream.js.
//
//   import { connect } from '@shopstream/client'; // or '/shopstream.js' on the service's origin
//   const client = connect({ onState: (s) => console.log(s) });
//   const sub = client.subscribe('order_changes', { filter: { status: ['pending'] } }, (ev) => ...);
//   sub.state; sub.position; sub(); // or sub.unsubscribe()
//
// The socket uses the same-origin session cookie and asks for the
// `shopstream.batch` subprotocol: a frame may hold several messages, one per line.
// It reconnects with exponential backoff (full jitter) and resumes every channel
// from the last event id it saw there. A close with 1008 (no or ended session)
// stops it with the state "login-required". A ping after pingInterval of
// silence that gets no answer within pongTimeout counts as a dead link.

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
    pingInterval = 20000,
    pongTimeout = 10000,
    network = typeof globalThis.addEventListener === 'function' ? globalThis : null,
    storage = null,
    storageKey = 'shopstream.positions',
    numbers = 'number',
    onState,
    onResync,
    onError,
    onLoginRequired,
    onMessage,
  } = options;
  if (typeof WS !== 'function') throw new Error('shopstream: no WebSocket constructor available');
  const target = resolveURL(url);
  const parse =
    numbers === 'number'
      ? JSON.parse
      : typeof numbers === 'function'
        ? (text) => parseJSON(text, numbers)
        : (text) => (MAYBE_INEXACT.test(text) ? parseJSON(text, numbers) : JSON.parse(text));

  /** channel → its current subscription (see subscribe) */
  const subs = new Map();
  let ws = null;
  let state = 'connecting';
  let attempt = 0; // failed attempts since the last stable connection
  let timer = null; // the reconnect timer
  let connectedAt = null; // clock.now() of the last "connected" message
  let greeted = false; // "connected" received on the current socket
  // Every request sent on this socket gets exactly one reply, in order
  // (subscribed/unsubscribed/pong or an error without channel).
  let inflight = [];
  let subscribing = 0; // subscribe requests among them
  let closed = false;
  // Heartbeat: frames received on this socket, when the last one came, the ping out.
  let hb = null;
  let received = 0;
  let lastSeen = 0;
  let pingAt = null;
  let pingSeen = 0;
  let stored = {};
  try {
    const v = storage && JSON.parse(storage.getItem(storageKey));
    if (v && typeof v === 'object') stored = v;
  } catch {
    /* nothing usable stored */
  }
  const storedSince = (channel) => (/^\d+$/.test(stored[channel]) ? stored[channel] : null);

  function setState(s) {
    if (s === state) return;
    state = s;
    if (onState) onState(s);
  }

  function reportError(err) {
    if (onError) onError(err);
  }

  function setSub(s, st, error = null) {
    const changed = s.state !== st || s.error !== error;
    s.state = st;
    s.error = error;
    if (changed && s.onState) s.onState(st, s.handle);
  }

  function save() {
    if (!storage) return;
    for (const [channel, s] of subs) if (s.cursor != null) stored[channel] = s.cursor;
    try {
      storage.setItem(storageKey, JSON.stringify(stored));
    } catch {
      /* full or forbidden: resume from memory only */
    }
  }

  function send(msg, req) {
    if (!ws || !greeted || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(msg));
    inflight.push(req);
    return true;
  }

  function sendSubscribe(s) {
    const msg = { type: 'subscribe', channel: s.channel };
    if (s.filter && Object.keys(s.filter).length) msg.filter = s.filter;
    if (s.actions && s.actions.length) msg.actions = s.actions;
    if (s.cursor != null && s.resume) msg.since = s.cursor;
    if (send(msg, { sub: s, since: msg.since })) {
      subscribing++;
      setSub(s, 'subscribing');
    }
  }

  function maybeLive() {
    if (greeted && subscribing === 0) setState('live');
  }

  function open() {
    timer = null;
    if (closed) return;
    greeted = false;
    inflight = [];
    subscribing = 0;
    let sock;
    try {
      sock = new WS(target, [BATCH_SUBPROTOCOL]);
    } catch (err) {
      reportError({ code: 'network', message: String((err && err.message) || err) });
      scheduleReconnect();
      return;
    }
    ws = sock;
    received = 0;
    lastSeen = clock.now();
    pingAt = null;
    // No "connected" within pingInterval + pongTimeout: the handshake hangs.
    if (pingInterval > 0) hb = clock.setTimeout(beat, pingInterval + pongTimeout);
    sock.onmessage = (ev) => {
      if (sock !== ws) return;
      received++;
      lastSeen = clock.now();
      const text = typeof ev.data === 'string' ? ev.data : String(ev.data);
      let moved = false;
      for (const line of text.split('\n')) {
        if (!line) continue;
        let msg;
        try {
          msg = parse(line);
        } catch {
          reportError({ code: 'bad_message', message: 'the server sent invalid JSON' });
          continue;
        }
        if (handle(msg)) moved = true;
        if (sock !== ws) break; // a handler closed or replaced the socket
      }
      if (moved) save();
    };
    sock.onclose = (ev) => lost(sock, ev.code, ev.reason);
    sock.onerror = () => {
      // A close event always follows; it decides what to do.
    };
  }

  // lost ends the current socket sock: closed by the server or the network,
  // or given up by the client (kill).
  function lost(sock, code, reason) {
    if (sock !== ws) return;
    ws = null;
    greeted = false;
    inflight = [];
    subscribing = 0;
    if (hb != null) clock.clearTimeout(hb);
    hb = null;
    for (const s of subs.values()) if (s.state === 'subscribed') setSub(s, 'subscribing');
    if (closed) return;
    if (connectedAt != null && clock.now() - connectedAt >= stableAfter) attempt = 0;
    connectedAt = null;
    if (code === CloseCode.POLICY_VIOLATION) {
      closed = true;
      setState('login-required');
      if (onLoginRequired) onLoginRequired(reason || 'login required');
      return;
    }
    scheduleReconnect();
  }

  function kill(reason, code = 4000) {
    const sock = ws;
    if (!sock) return;
    try {
      sock.close(code, reason);
    } catch {
      /* already closing */
    }
    lost(sock, CloseCode.ABNORMAL);
  }

  // beat runs the heartbeat of the current socket (see open and "connected").
  function beat() {
    hb = null;
    if (!ws) return;
    const now = clock.now();
    if (!greeted) return dead('no "connected" from the server');
    if (pingAt != null) {
      if (received > pingSeen) pingAt = null; // something came after the ping
      else if (now - pingAt >= pongTimeout) return dead('no pong within ' + pongTimeout + ' ms');
      else return void (hb = clock.setTimeout(beat, pingAt + pongTimeout - now));
    }
    const idle = now - lastSeen;
    if (idle < pingInterval) return void (hb = clock.setTimeout(beat, pingInterval - idle));
    if (send({ type: 'ping' }, {})) {
      pingAt = now;
      pingSeen = received;
    }
    hb = clock.setTimeout(beat, pongTimeout);
  }

  function dead(message) {
    reportError({ code: 'timeout', message: 'shopstream: dead link: ' + message });
    kill('heartbeat timeout');
  }

  function scheduleReconnect() {
    if (closed || timer != null) return;
    setState('reconnecting');
    const delay = backoffDelay(attempt, { minDelay, maxDelay, random });
    attempt++;
    timer = clock.setTimeout(open, delay);
  }

  function current(s) {
    return s && subs.get(s.channel) === s;
  }

  // handle applies one server message; it reports whether a position moved.
  function handle(msg) {
    if (onMessage) onMessage(msg);
    switch (msg.type) {
      case 'connected':
        greeted = true;
        connectedAt = clock.now();
        for (const s of subs.values()) sendSubscribe(s);
        if (pingInterval > 0) {
          if (hb != null) clock.clearTimeout(hb);
          hb = clock.setTimeout(beat, pingInterval);
        }
        maybeLive();
        return false;
      case 'subscribed': {
        const req = inflight.shift() || {};
        const s = req.sub;
        if (s) subscribing--;
        let moved = false;
        if (current(s)) {
          // A fresh subscription delivers everything after position: that is
          // where a later resume starts. A resumed one replays from since first.
          if (req.since == null && typeof msg.position === 'string' && idGreater(msg.position, s.cursor)) {
            s.cursor = msg.position;
            moved = true;
          }
          s.resume = true;
          s.serverPosition = msg.position;
          s.resumed = req.since == null ? null : 'exact';
          setSub(s, 'subscribed');
        }
        maybeLive();
        return moved;
      }
      case 'event': {
        const s = subs.get(msg.channel);
        if (!s) return false;
        const moved = typeof msg.id === 'string' && idGreater(msg.id, s.cursor);
        if (moved) s.cursor = msg.id;
        try {
          s.onEvent(msg);
        } catch (err) {
          reportError({ code: 'handler', message: String((err && err.message) || err), channel: msg.channel });
        }
        return moved;
      }
      case 'resync_required': {
        const s = subs.get(msg.channel);
        // The events between our cursor and the position are gone: the caller
        // reloads, and the subscription goes on live from its position.
        if (s) {
          s.resumed = 'resync';
          if (typeof s.serverPosition === 'string' && idGreater(s.serverPosition, s.cursor)) s.cursor = s.serverPosition;
          if (s.onResync) s.onResync(msg.channel, s.handle);
        }
        if (onResync) onResync(msg.channel);
        return !!s;
      }
      case 'error': {
        const err = { code: msg.code, message: msg.message };
        if (msg.channel) {
          // Unasked: the subscription was revoked (forbidden).
          const s = subs.get(msg.channel);
          if (s) setSub(s, 'error', err);
          reportError({ ...err, channel: msg.channel });
          return false;
        }
        // Otherwise it answers our oldest request.
        const req = inflight.shift() || {};
        const s = req.sub;
        if (s) subscribing--;
        if (current(s) && req.since != null && msg.code === 'invalid_request' && /since/.test(msg.message)) {
          // The log no longer knows our position (e.g. a new database):
          // subscribe afresh and tell the caller to reload.
          s.cursor = null;
          s.resume = false;
          sendSubscribe(s);
          s.resumed = 'resync';
          if (s.onResync) s.onResync(s.channel, s.handle);
          if (onResync) onResync(s.channel);
        } else {
          if (current(s)) {
            setSub(s, 'error', err);
            if (msg.code === 'rate_limited' || msg.code === 'internal_error') {
              const sock = ws;
              clock.setTimeout(() => {
                if (sock === ws && current(s) && s.state === 'error') sendSubscribe(s);
              }, minDelay);
            }
          }
          reportError({ ...err, channel: s ? s.channel : req.channel });
        }
        maybeLive();
        return false;
      }
      default:
        // unsubscribed, pong: they answer a request too.
        if (msg.type === 'unsubscribed' || msg.type === 'pong') inflight.shift();
        return false;
    }
  }

  const onOffline = () => kill('offline', CloseCode.NORMAL);
  const onOnline = () => {
    if (state === 'reconnecting') client.reconnect();
  };
  if (network) {
    network.addEventListener('offline', onOffline);
    network.addEventListener('online', onOnline);
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
      onEvent = onEvent || opts.onEvent;
      if (typeof onEvent !== 'function') throw new TypeError('shopstream: subscribe needs an event callback');
      const prev = subs.get(channel);
      const since = opts.since != null ? String(opts.since) : null;
      const s = {
        channel,
        filter: opts.filter || null,
        actions: opts.actions || null,
        onEvent,
        onResync: opts.onResync || null,
        onState: opts.onState || null,
        state: 'subscribing',
        error: null,
        resumed: null,
        serverPosition: null,
        cursor: since || (prev ? prev.cursor : storedSince(channel)),
        // Replaced while connected, it starts afresh at its new position (events
        // of the old one may still be in flight); replaced while disconnected,
        // it resumes where the old one stopped.
        resume: !!(since || (prev ? prev.resume && !greeted : storedSince(channel))),
      };
      const h = () => {
        if (!current(s)) return; // already replaced or removed
        subs.delete(channel);
        send({ type: 'unsubscribe', channel }, { channel });
        delete stored[channel];
        save();
        setSub(s, 'unsubscribed');
      };
      s.handle = h;
      h.unsubscribe = h;
      for (const [k, get] of Object.entries({
        state: () => s.state,
        error: () => s.error,
        position: () => s.cursor,
        resumed: () => s.resumed,
      }))
        Object.defineProperty(h, k, { get, enumerable: true });
      Object.defineProperty(h, 'channel', { value: channel, enumerable: true });
      subs.set(channel, s);
      if (prev) setSub(prev, 'unsubscribed');
      if (greeted) sendSubscribe(s);
      return h;
    },
    /** The last event id seen on each subscribed channel. */
    positions() {
      const out = {};
      for (const [channel, s] of subs) if (s.cursor != null) out[channel] = s.cursor;
      return out;
    },
    reconnect() {
      if (state === 'closed') return;
      closed = false;
      attempt = 0;
      kill('reconnect', CloseCode.NORMAL);
      if (timer != null) clock.clearTimeout(timer);
      setState('reconnecting');
      open();
    },
    close() {
      if (state === 'closed') return;
      closed = true;
      if (timer != null) clock.clearTimeout(timer);
      timer = null;
      kill('client closed', CloseCode.NORMAL);
      if (network) {
        network.removeEventListener('offline', onOffline);
        network.removeEventListener('online', onOnline);
      }
      for (const s of subs.values()) setSub(s, 'unsubscribed');
      setState('closed');
    },
  };

  if (onState) onState(state);
  open();
  return client;
}

// A line that may hold a number JSON.parse would round: 16 or more digits in a
// row (a dot among them), or a three-digit exponent. Others take JSON.parse.
const MAYBE_INEXACT = /\d[\d.]{15}|[eE][+-]?\d{3}/;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const SPACE = /[ \t\n\r]*/y;

// The decimal value of a number's text, canonical: "1.50" and "15e-1" → "15e-1".
function canonical(text) {
  const m = /^(-?)(\d*)\.?(\d*)(?:e([+-]?\d+))?$/i.exec(text);
  if (!m) return text; // Infinity, NaN
  let digits = (m[2] + m[3]).replace(/^0+/, '');
  const trimmed = digits.replace(/0+$/, '');
  const exp = (+m[4] || 0) - m[3].length + digits.length - trimmed.length;
  return trimmed ? m[1] + trimmed + 'e' + exp : '0';
}

/**
 * A number's text as a JS value that keeps it exact: a number when the number
 * prints back as the same decimal value (and, for integers, is safe), else the
 * text itself, or a BigInt for an integer with mode 'bigint'.
 */
export function exactNumber(text, mode = 'string') {
  const n = Number(text);
  const integer = !/[.eE]/.test(text);
  if (integer ? Number.isSafeInteger(n) : canonical(String(n)) === canonical(text)) return n;
  return integer && mode === 'bigint' ? BigInt(text) : text;
}

/**
 * JSON.parse that keeps numbers exact: numbers is 'string' or 'bigint' (see
 * exactNumber), or a function given each number's text. Throws SyntaxError on
 * invalid JSON, as JSON.parse does. Iterative: any depth.
 */
export function parseJSON(text, numbers = 'string') {
  const num = typeof numbers === 'function' ? numbers : (raw) => exactNumber(raw, numbers);
  const stack = []; // open arrays and objects
  const keys = []; // the pending key of each open object
  let i = 0;
  const fail = () => {
    throw new SyntaxError('shopstream: invalid JSON at position ' + i);
  };
  const skip = () => {
    SPACE.lastIndex = i;
    SPACE.test(text);
    i = SPACE.lastIndex;
  };
  const string = () => {
    if (text.charCodeAt(i) !== 34) fail();
    let j = i + 1;
    for (let c; (c = text.charCodeAt(j)) !== 34; j += c === 92 ? 2 : 1) if (c !== c) fail(); // NaN: the end
    const s = JSON.parse(text.slice(i, j + 1)); // escapes and control characters
    i = j + 1;
    return s;
  };
  const key = () => {
    skip();
    const k = string();
    skip();
    if (text.charCodeAt(i++) !== 58) fail(); // :
    return k;
  };
  for (;;) {
    skip();
    let v;
    const c = text.charCodeAt(i);
    if (c === 123 || c === 91) {
      // { or [
      i++;
      skip();
      if (text.charCodeAt(i) === c + 2) {
        // } or ]: empty
        i++;
        v = c === 123 ? {} : [];
      } else {
        stack.push(c === 123 ? {} : []);
        if (c === 123) keys.push(key());
        continue;
      }
    } else if (c === 34) v = string();
    else if (text.startsWith('true', i)) {
      v = true;
      i += 4;
    } else if (text.startsWith('false', i)) {
      v = false;
      i += 5;
    } else if (text.startsWith('null', i)) {
      v = null;
      i += 4;
    } else {
      NUMBER.lastIndex = i;
      const m = NUMBER.exec(text);
      if (!m) fail();
      i = NUMBER.lastIndex;
      v = num(m[0]);
    }
    // Put v in its container; close the containers that end after it.
    for (;;) {
      const top = stack[stack.length - 1];
      if (!top) {
        skip();
        if (i < text.length) fail();
        return v;
      }
      const isArray = Array.isArray(top);
      if (isArray) top.push(v);
      else {
        const k = keys[keys.length - 1];
        if (k === '__proto__') Object.defineProperty(top, k, { value: v, writable: true, enumerable: true, configurable: true });
        else top[k] = v;
      }
      skip();
      const d = text.charCodeAt(i++);
      if (d === 44) {
        // ,
        if (!isArray) keys[keys.length - 1] = key();
        break;
      }
      if (d !== (isArray ? 93 : 125)) fail();
      v = stack.pop();
      if (!isArray) keys.pop();
    }
  }
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

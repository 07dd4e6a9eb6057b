// Unit tests of the browser client (web/client/shopstream.js) with a fake clock
// and a fake WebSocket. Run: node --test web/client/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { connect, backoffDelay, queryKeysFor, invalidateQueries, pluralize } from '../shopstream.js';

// FakeClock runs timers when the test advances time.
class FakeClock {
  constructor() {
    this.t = 0;
    this.timers = new Map();
    this.next = 1;
  }
  now() {
    return this.t;
  }
  setTimeout(fn, ms) {
    const id = this.next++;
    this.timers.set(id, { fn, at: this.t + ms, ms });
    return id;
  }
  clearTimeout(id) {
    this.timers.delete(id);
  }
  /** The delays of the timers pending now. */
  pending() {
    return [...this.timers.values()].map((t) => t.ms);
  }
  advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let first = null;
      for (const [id, t] of this.timers) if (t.at <= end && (!first || t.at < first[1].at)) first = [id, t];
      if (!first) break;
      this.timers.delete(first[0]);
      this.t = first[1].at;
      first[1].fn();
    }
    this.t = end;
  }
}

// fakeSockets returns a WebSocket constructor recording every socket it makes.
function fakeSockets() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.sent = [];
      this.onmessage = this.onclose = this.onerror = this.onopen = null;
      sockets.push(this);
    }
    send(data) {
      assert.equal(this.readyState, 1, 'send on a socket that is not open');
      this.sent.push(JSON.parse(data));
    }
    close(code = 1000, reason = '') {
      this.closedByClient = { code, reason };
      this.readyState = 3;
    }
    // Test side.
    serverOpen(userId = 1) {
      this.readyState = 1;
      this.onopen?.({});
      this.frame({ type: 'connected', message: 'WebSocket connection established', userId });
    }
    /** One frame holding the messages, newline-separated (shopstream.batch). */
    frame(...msgs) {
      this.onmessage?.({ data: msgs.map((m) => JSON.stringify(m)).join('\n') });
    }
    serverClose(code, reason = '') {
      this.readyState = 3;
      this.onclose?.({ code, reason, wasClean: code !== 1006 });
    }
    networkError() {
      this.readyState = 3;
      this.onerror?.({});
      this.onclose?.({ code: 1006, reason: '', wasClean: false });
    }
    /** Answers every pending subscribe with subscribed at position. */
    ackSubscribes(position) {
      const subs = this.sent.filter((m) => m.type === 'subscribe' && !m.acked);
      for (const m of subs) {
        m.acked = true;
        this.frame({ type: 'subscribed', channel: m.channel, position });
      }
      return subs;
    }
  }
  return { sockets, WebSocket: FakeWebSocket };
}

function setup(opts = {}) {
  const clock = new FakeClock();
  const { sockets, WebSocket } = fakeSockets();
  const states = [];
  const resyncs = [];
  const errors = [];
  let loginRequired = 0;
  const client = connect({
    url: 'ws://shop.test/ws',
    WebSocket,
    clock,
    random: () => 1 - Number.EPSILON, // the top of each jitter range
    onState: (s) => states.push(s),
    onResync: (c) => resyncs.push(c),
    onError: (e) => errors.push(e),
    onLoginRequired: () => loginRequired++,
    ...opts,
  });
  return { client, clock, sockets, states, resyncs, errors, loginRequired: () => loginRequired };
}

const ev = (id, channel, event, data, previous) => ({
  type: 'event', id, channel, event, data, ...(previous ? { previous } : {}), timestamp: '2026-01-25T10:30:00.000Z',
});

test('asks for the batch subprotocol and splits frames on newlines', () => {
  const { client, sockets } = setup();
  assert.equal(sockets.length, 1);
  assert.equal(sockets[0].url, 'ws://shop.test/ws');
  assert.deepEqual(sockets[0].protocols, ['shopstream.batch']);
  const got = [];
  client.subscribe('order_changes', {}, (e) => got.push(e.id));
  sockets[0].serverOpen();
  sockets[0].ackSubscribes('10');
  sockets[0].frame(ev('11', 'order_changes', 'order:created', { id: 1 }), ev('12', 'order_changes', 'order:updated', { id: 1 }));
  sockets[0].onmessage({ data: JSON.stringify(ev('13', 'order_changes', 'order:deleted', { id: 1 })) + '\n' });
  assert.deepEqual(got, ['11', '12', '13']);
});

test('states: connecting, live once subscriptions are confirmed, reconnecting, live', () => {
  const { client, clock, sockets, states } = setup();
  client.subscribe('order_changes', { filter: { status: ['pending'] }, actions: ['updated'] }, () => {});
  assert.deepEqual(states, ['connecting']);
  sockets[0].serverOpen();
  assert.deepEqual(sockets[0].sent, [{ type: 'subscribe', channel: 'order_changes', filter: { status: ['pending'] }, actions: ['updated'] }]);
  assert.deepEqual(states, ['connecting'], 'not live before subscribed');
  sockets[0].ackSubscribes('5');
  assert.deepEqual(states, ['connecting', 'live']);
  sockets[0].serverClose(1001, 'server shutting down');
  assert.deepEqual(states, ['connecting', 'live', 'reconnecting']);
  clock.advance(1000);
  assert.equal(sockets.length, 2);
  sockets[1].serverOpen();
  sockets[1].ackSubscribes('5');
  assert.deepEqual(states, ['connecting', 'live', 'reconnecting', 'live']);
});

test('backoff: full jitter, doubling from 1 s to a 30 s cap', () => {
  assert.equal(backoffDelay(0, { random: () => 0 }), 0);
  const top = () => 1 - Number.EPSILON;
  const caps = [0, 1, 2, 3, 4, 5, 6, 10].map((n) => backoffDelay(n, { random: top }));
  assert.deepEqual(caps, [999, 1999, 3999, 7999, 15999, 29999, 29999, 29999]);
  assert.equal(backoffDelay(3, { random: () => 0.5 }), 4000);
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(2);
    assert.ok(d >= 0 && d < 4000, `delay ${d}`);
  }
});

test('reconnects after network errors with growing delays, resetting after a stable connection', () => {
  const { clock, sockets } = setup();
  sockets[0].networkError();
  const delays = [];
  for (let i = 1; i <= 7; i++) {
    const [d] = clock.pending();
    delays.push(d);
    clock.advance(d);
    assert.equal(sockets.length, i + 1, `attempt ${i} made`);
    sockets[i].networkError();
  }
  assert.deepEqual(delays, [999, 1999, 3999, 7999, 15999, 29999, 29999]);

  // A short-lived connection does not reset the backoff.
  clock.advance(clock.pending()[0]);
  let s = sockets.at(-1);
  s.serverOpen();
  clock.advance(9000);
  s.serverClose(1011, 'internal error');
  assert.deepEqual(clock.pending(), [29999]);

  // One that stayed up 10 s does.
  clock.advance(29999);
  s = sockets.at(-1);
  s.serverOpen();
  clock.advance(10000);
  s.serverClose(1013, 'too slow');
  assert.deepEqual(clock.pending(), [999]);
});

test('reconnects on 1001, 1011, 1013 and 1006', () => {
  for (const code of [1001, 1011, 1013, 1006, 1000]) {
    const { clock, sockets, states } = setup();
    sockets[0].serverOpen();
    sockets[0].serverClose(code);
    assert.equal(states.at(-1), 'reconnecting', `code ${code}`);
    clock.advance(1000);
    assert.equal(sockets.length, 2, `reconnected after ${code}`);
  }
});

test('a throwing WebSocket constructor counts as a network error', () => {
  const clock = new FakeClock();
  let calls = 0;
  const states = [];
  connect({
    url: 'ws://shop.test/ws', clock, random: () => 0.5, onState: (s) => states.push(s),
    WebSocket: function () {
      calls++;
      throw new Error('offline');
    },
  });
  assert.equal(calls, 1);
  assert.deepEqual(states, ['connecting', 'reconnecting']);
  clock.advance(500);
  assert.equal(calls, 2);
});

test('1008 stops reconnecting and reports login required', () => {
  const { clock, sockets, states, loginRequired } = setup();
  sockets[0].serverOpen();
  sockets[0].serverClose(1008, 'authentication required');
  assert.equal(states.at(-1), 'login-required');
  assert.equal(loginRequired(), 1);
  assert.deepEqual(clock.pending(), [], 'no reconnect scheduled');
  clock.advance(120000);
  assert.equal(sockets.length, 1);
});

test('1008 on the handshake (no session) after a reconnect also stops', () => {
  const { clock, sockets, states, loginRequired } = setup();
  sockets[0].serverOpen();
  sockets[0].serverClose(1001);
  clock.advance(1000);
  sockets[1].serverClose(1008, 'authentication required');
  assert.deepEqual(states, ['connecting', 'live', 'reconnecting', 'login-required']);
  assert.equal(loginRequired(), 1);
  clock.advance(120000);
  assert.equal(sockets.length, 2);
});

test('resume: every channel resubscribes with since = the last event id seen there', () => {
  const { client, clock, sockets } = setup();
  const got = [];
  client.subscribe('order_changes', { filter: { status: 'pending' } }, (e) => got.push(e.id));
  client.subscribe('product_changes', {}, (e) => got.push(e.id));
  client.subscribe('customer_changes', {}, (e) => got.push(e.id));
  const s0 = sockets[0];
  s0.serverOpen();
  assert.deepEqual(s0.sent.map((m) => m.since), [undefined, undefined, undefined], 'no since on a first subscribe');
  s0.ackSubscribes('100');
  s0.frame(ev('101', 'order_changes', 'order:updated', { id: 1 }), ev('102', 'product_changes', 'product:created', { id: 7 }));
  s0.frame(ev('105', 'order_changes', 'order:updated', { id: 2 }));
  assert.deepEqual(client.positions(), { order_changes: '105', product_changes: '102', customer_changes: '100' });
  s0.networkError();
  clock.advance(1000);
  const s1 = sockets[1];
  s1.serverOpen();
  assert.deepEqual(s1.sent, [
    { type: 'subscribe', channel: 'order_changes', filter: { status: 'pending' }, since: '105' },
    { type: 'subscribe', channel: 'product_changes', since: '102' },
    // Nothing seen on customers: it resumes after the position it subscribed at.
    { type: 'subscribe', channel: 'customer_changes', since: '100' },
  ]);
  // The server answers subscribed (position 120), then replays; the cursor
  // follows the replayed events, not the position.
  s1.frame({ type: 'subscribed', channel: 'order_changes', position: '120' }, ev('110', 'order_changes', 'order:updated', { id: 3 }));
  s1.networkError();
  clock.advance(1999);
  const s2 = sockets[2];
  s2.serverOpen();
  assert.equal(s2.sent[0].since, '110', 'an interrupted replay resumes after its last event');
  assert.equal(s2.sent[1].since, '102');
  assert.deepEqual(got, ['101', '102', '105', '110']);
});

test('ids compare as numbers, not strings', () => {
  const { client, clock, sockets } = setup();
  client.subscribe('order_changes', {}, () => {});
  sockets[0].serverOpen();
  sockets[0].ackSubscribes('9');
  sockets[0].frame(ev('10', 'order_changes', 'order:updated', { id: 1 }));
  sockets[0].serverClose(1001);
  clock.advance(1000);
  sockets[1].serverOpen();
  assert.equal(sockets[1].sent[0].since, '10');
});

test('resync_required reaches the caller; a rejected since subscribes afresh', () => {
  const perChannel = [];
  const { client, clock, sockets, resyncs, errors } = setup();
  client.subscribe('order_changes', { onResync: (c) => perChannel.push(c) }, () => {});
  sockets[0].serverOpen();
  sockets[0].ackSubscribes('50');
  sockets[0].frame(ev('51', 'order_changes', 'order:updated', { id: 1 }));
  sockets[0].serverClose(1001);
  clock.advance(1000);
  const s1 = sockets[1];
  s1.serverOpen();
  s1.frame({ type: 'subscribed', channel: 'order_changes', position: '900' }, { type: 'resync_required', channel: 'order_changes' });
  assert.deepEqual(resyncs, ['order_changes']);
  assert.deepEqual(perChannel, ['order_changes']);

  // A since ahead of the log (a new database) is invalid_request: subscribe
  // without since and tell the caller to reload.
  s1.serverClose(1001);
  clock.advance(2000);
  const s2 = sockets[2];
  s2.serverOpen();
  assert.equal(s2.sent[0].since, '900', 'after a resync it goes on from the position');
  s2.frame({ type: 'error', code: 'invalid_request', message: '"since" 900 is ahead of the log' });
  assert.deepEqual(s2.sent[1], { type: 'subscribe', channel: 'order_changes' });
  assert.deepEqual(resyncs, ['order_changes', 'order_changes']);
  assert.deepEqual(errors, []);
});

test('subscribe errors are reported with their channel and do not block live', () => {
  const { client, sockets, errors, states } = setup();
  client.subscribe('order_changes', {}, () => {});
  client.subscribe('product_changes', {}, () => {});
  sockets[0].serverOpen();
  sockets[0].frame({ type: 'subscribed', channel: 'order_changes', position: '3' });
  sockets[0].frame({ type: 'error', code: 'forbidden', message: 'your role may not read product_changes' });
  assert.deepEqual(errors, [{ code: 'forbidden', message: 'your role may not read product_changes', channel: 'product_changes' }]);
  assert.equal(states.at(-1), 'live');
});

test('unsubscribe sends unsubscribe and is not resubscribed after a reconnect', () => {
  const { client, clock, sockets } = setup();
  const got = [];
  const stop = client.subscribe('order_changes', {}, (e) => got.push(e.id));
  client.subscribe('product_changes', {}, () => {});
  sockets[0].serverOpen();
  sockets[0].ackSubscribes('1');
  stop();
  assert.deepEqual(sockets[0].sent.at(-1), { type: 'unsubscribe', channel: 'order_changes' });
  sockets[0].frame(ev('2', 'order_changes', 'order:updated', { id: 1 }));
  assert.deepEqual(got, []);
  sockets[0].serverClose(1001);
  clock.advance(1000);
  sockets[1].serverOpen();
  assert.deepEqual(sockets[1].sent.map((m) => m.channel), ['product_changes']);
});

test('close() stops for good', () => {
  const { client, clock, sockets, states } = setup();
  sockets[0].serverOpen();
  client.close();
  assert.deepEqual(sockets[0].closedByClient, { code: 1000, reason: 'client closed' });
  assert.equal(states.at(-1), 'closed');
  clock.advance(60000);
  assert.equal(sockets.length, 1);
});

test('query invalidation keys', () => {
  assert.deepEqual(queryKeysFor({ event: 'order:updated', data: { id: 123 } }), [['orders'], ['orders', 123]]);
  assert.deepEqual(queryKeysFor({ event: 'product:truncated', data: {} }), [['products']]);
  for (const [e, p] of [['order', 'orders'], ['product', 'products'], ['customer', 'customers'], ['shipment', 'shipments'], ['transaction', 'transactions']]) {
    assert.equal(pluralize(e), p);
  }
  const calls = [];
  invalidateQueries({ invalidateQueries: (f) => calls.push(f.queryKey) }, { event: 'shipment:deleted', data: { id: 9 } });
  assert.deepEqual(calls, [['shipments'], ['shipments', 9]]);
});

// Heartbeat.

test('heartbeat: a link that stops delivering bytes leaves live within pingInterval + pongTimeout', () => {
  const { client, clock, sockets, states, errors } = setup();
  client.subscribe('order_changes', () => {});
  const s0 = sockets[0];
  s0.serverOpen();
  s0.ackSubscribes('1');
  assert.equal(client.state, 'live');
  // The proxy drops everything from now on: nothing reaches the client.
  clock.advance(19999);
  assert.equal(s0.sent.filter((m) => m.type === 'ping').length, 0, 'no ping before pingInterval of silence');
  clock.advance(1);
  assert.deepEqual(s0.sent.at(-1), { type: 'ping' });
  assert.equal(client.state, 'live');
  clock.advance(9999);
  assert.equal(client.state, 'live');
  clock.advance(1);
  assert.equal(client.state, 'reconnecting', 'no pong within pongTimeout: dead');
  assert.equal(states.at(-1), 'reconnecting');
  assert.deepEqual(s0.closedByClient, { code: 4000, reason: 'heartbeat timeout' });
  assert.equal(errors.at(-1).code, 'timeout');
  // It reconnects with the usual backoff and resumes.
  clock.advance(1000);
  assert.equal(sockets.length, 2);
  sockets[1].serverOpen();
  assert.equal(sockets[1].sent[0].since, '1');
  // Late bytes of the dead socket are ignored.
  s0.frame(ev('5', 'order_changes', 'order:updated', { id: 1 }));
  assert.equal(client.positions().order_changes, '1');
});

test('heartbeat: pongs and traffic keep the link live; pingInterval 0 turns it off', () => {
  const { client, clock, sockets } = setup({ pingInterval: 1000, pongTimeout: 500 });
  sockets[0].serverOpen();
  let pings = 0;
  for (let t = 0; t < 60; t++) {
    clock.advance(1000);
    const last = sockets[0].sent.at(-1);
    if (last && last.type === 'ping' && !last.acked) {
      last.acked = true;
      pings++;
      clock.advance(100);
      sockets[0].frame({ type: 'pong', timestamp: '2026-01-25T10:30:00.000Z' });
    }
  }
  assert.equal(client.state, 'live');
  assert.equal(sockets.length, 1);
  assert.ok(pings >= 50, `${pings} pings`);
  // Events every 400 ms: no ping needed.
  const before = sockets[0].sent.length;
  for (let t = 0; t < 50; t++) {
    clock.advance(400);
    sockets[0].frame({ type: 'pong', timestamp: 'x' }); // any message counts
  }
  assert.equal(sockets[0].sent.length, before);
  assert.equal(client.state, 'live');

  const off = setup({ pingInterval: 0 });
  off.sockets[0].serverOpen();
  off.clock.advance(3600000);
  assert.equal(off.client.state, 'live');
  assert.deepEqual(off.sockets[0].sent, []);
});

test('heartbeat: a handshake that never says connected is dead too', () => {
  const { client, clock, sockets } = setup();
  sockets[0].readyState = 1; // opened, but silent
  clock.advance(29999);
  assert.equal(sockets.length, 1);
  clock.advance(1);
  assert.equal(client.state, 'reconnecting');
  clock.advance(1000);
  assert.equal(sockets.length, 2);
});

test('offline drops the socket at once; online reconnects without waiting; reconnect()', () => {
  const network = new EventTarget();
  const { client, clock, sockets, states } = setup({ network });
  client.subscribe('order_changes', () => {});
  sockets[0].serverOpen();
  sockets[0].ackSubscribes('7');
  network.dispatchEvent(new Event('offline'));
  assert.equal(client.state, 'reconnecting');
  assert.ok(sockets[0].closedByClient);
  // Attempts while offline fail, the backoff grows.
  for (let i = 1; i <= 3; i++) {
    clock.advance(clock.pending()[0]);
    sockets[i].networkError();
  }
  assert.deepEqual(clock.pending(), [7999]);
  network.dispatchEvent(new Event('online'));
  assert.equal(sockets.length, 5, 'online: a new attempt at once');
  assert.deepEqual(clock.pending(), [30000], 'only the handshake timer is pending');
  sockets[4].serverOpen();
  assert.equal(sockets[4].sent[0].since, '7');
  sockets[4].ackSubscribes('9');
  assert.equal(client.state, 'live');
  // online while live does nothing.
  network.dispatchEvent(new Event('online'));
  assert.equal(sockets.length, 5);

  // reconnect(): a new socket now, resuming.
  client.reconnect();
  assert.equal(sockets.length, 6);
  assert.ok(sockets[4].closedByClient);
  sockets[5].serverOpen();
  assert.equal(sockets[5].sent[0].since, '7');
  // After 1008 it starts again (the user logged in again); after close() it does not.
  sockets[5].serverClose(1008, 'session ended');
  assert.equal(client.state, 'login-required');
  client.reconnect();
  assert.equal(sockets.length, 7);
  client.close();
  client.reconnect();
  network.dispatchEvent(new Event('online'));
  assert.equal(sockets.length, 7);
  assert.equal(states.at(-1), 'closed');
});

// Subscription handles.

test('a subscription handle: subscribing, subscribed, its position, its callbacks, unsubscribed', () => {
  const { client, clock, sockets } = setup();
  const seen = [];
  const got = [];
  const sub = client.subscribe('order_changes', { onState: (s, h) => seen.push([s, h.position]) }, (e) => got.push(e.id));
  assert.equal(typeof sub, 'function', 'still callable to unsubscribe');
  assert.equal(sub.channel, 'order_changes');
  assert.equal(sub.state, 'subscribing');
  assert.equal(sub.position, null);
  sockets[0].serverOpen();
  sockets[0].ackSubscribes('40');
  assert.equal(sub.state, 'subscribed');
  assert.equal(sub.position, '40');
  assert.equal(sub.resumed, null, 'a fresh subscription');
  sockets[0].frame(ev('41', 'order_changes', 'order:created', { id: 1 }));
  assert.equal(sub.position, '41');
  assert.deepEqual(got, ['41']);

  // Disconnected, it is no longer subscribed; back, it resumed exactly.
  sockets[0].serverClose(1001);
  assert.equal(sub.state, 'subscribing');
  clock.advance(1000);
  sockets[1].serverOpen();
  sockets[1].ackSubscribes('45');
  assert.equal(sub.state, 'subscribed');
  assert.equal(sub.resumed, 'exact');
  assert.equal(sub.position, '41', 'a resumed subscription replays from since');

  // A resume that needs a resync says so, on the handle and its callback.
  const resyncs = [];
  const sub2 = client.subscribe('product_changes', { onResync: (c, h) => resyncs.push([c, h === sub2]) }, () => {});
  sockets[1].ackSubscribes('45');
  sockets[1].serverClose(1001);
  clock.advance(2000);
  sockets[2].serverOpen();
  sockets[2].frame({ type: 'subscribed', channel: 'order_changes', position: '90' });
  sockets[2].frame({ type: 'subscribed', channel: 'product_changes', position: '90' }, { type: 'resync_required', channel: 'product_changes' });
  assert.equal(sub.resumed, 'exact');
  assert.equal(sub2.resumed, 'resync');
  assert.deepEqual(resyncs, [['product_changes', true]]);
  assert.equal(sub2.position, '90');

  sub.unsubscribe();
  assert.equal(sub.state, 'unsubscribed');
  assert.deepEqual(sockets[2].sent.at(-1), { type: 'unsubscribe', channel: 'order_changes' });
  sub(); // twice is harmless
  assert.equal(sockets[2].sent.filter((m) => m.type === 'unsubscribe').length, 1);
  assert.deepEqual(seen.map(([s]) => s), ['subscribed', 'subscribing', 'subscribed', 'subscribing', 'subscribed', 'unsubscribed']);

  // Replacing a subscription ends the old handle.
  const a = client.subscribe('customer_changes', () => {});
  const b = client.subscribe('customer_changes', { filter: { id: 1 } }, () => {});
  assert.equal(a.state, 'unsubscribed');
  assert.equal(b.state, 'subscribing');
  a();
  assert.equal(b.state, 'subscribing', 'the old handle cannot unsubscribe the new one');
  client.close();
  assert.equal(b.state, 'unsubscribed');
});

test('a refused subscription is never subscribed: replies are matched to requests in order', () => {
  const { client, clock, sockets, errors } = setup({ pingInterval: 1000, pongTimeout: 5000 });
  const states = { order_changes: [], product_changes: [], customer_changes: [] };
  const subs = {};
  for (const c of Object.keys(states)) subs[c] = client.subscribe(c, { onState: (s) => states[c].push(s) }, () => {});
  sockets[0].serverOpen();
  // The server refuses the order filter, accepts products, refuses customers.
  sockets[0].frame(
    { type: 'error', code: 'invalid_request', message: 'filter names "nope", which order rows do not have' },
    { type: 'subscribed', channel: 'product_changes', position: '3' },
    { type: 'error', code: 'forbidden', message: 'your role may not read customer_changes' },
  );
  assert.equal(subs.order_changes.state, 'error');
  assert.deepEqual(subs.order_changes.error, { code: 'invalid_request', message: 'filter names "nope", which order rows do not have' });
  assert.equal(subs.product_changes.state, 'subscribed');
  assert.equal(subs.customer_changes.state, 'error');
  assert.equal(subs.customer_changes.error.code, 'forbidden');
  assert.deepEqual(states.order_changes, ['error']);
  assert.deepEqual(states.customer_changes, ['error'], 'never subscribed');
  assert.deepEqual(errors.map((e) => e.channel), ['order_changes', 'customer_changes']);

  // A ping's reply does not land on a subscription sent after it.
  clock.advance(1000);
  assert.deepEqual(sockets[0].sent.at(-1), { type: 'ping' });
  const late = client.subscribe('shipment_changes', () => {});
  sockets[0].frame({ type: 'error', code: 'rate_limited', message: 'too many messages: slow down' }); // answers the ping
  assert.equal(late.state, 'subscribing');
  sockets[0].frame({ type: 'subscribed', channel: 'shipment_changes', position: '4' });
  assert.equal(late.state, 'subscribed');

  // A rate-limited subscribe is retried after minDelay.
  const t = client.subscribe('transaction_changes', () => {});
  sockets[0].frame({ type: 'error', code: 'rate_limited', message: 'too many messages: slow down' });
  assert.equal(t.state, 'error');
  clock.advance(1000);
  assert.equal(t.state, 'subscribing');
  assert.equal(sockets[0].sent.filter((m) => m.channel === 'transaction_changes').length, 2);
  sockets[0].frame({ type: 'subscribed', channel: 'transaction_changes', position: '5' });
  assert.equal(t.state, 'subscribed');

  // Refused subscriptions are tried again on the next connection.
  sockets[0].serverClose(1001);
  assert.equal(subs.order_changes.state, 'error', 'stays error while disconnected');
  clock.advance(1000);
  sockets[1].serverOpen();
  assert.equal(subs.order_changes.state, 'subscribing');
});

test('a revoked subscription goes to error forbidden; the others stay', () => {
  const { client, sockets, errors } = setup();
  const orders = client.subscribe('order_changes', () => {});
  const customers = client.subscribe('customer_changes', () => {});
  sockets[0].serverOpen();
  sockets[0].ackSubscribes('10');
  sockets[0].frame({ type: 'error', code: 'forbidden', channel: 'customer_changes', message: 'your role may no longer read customer_changes' });
  assert.equal(customers.state, 'error');
  assert.equal(customers.error.code, 'forbidden');
  assert.equal(orders.state, 'subscribed');
  assert.deepEqual(errors, [{ code: 'forbidden', channel: 'customer_changes', message: 'your role may no longer read customer_changes' }]);
  // The revocation answered no request: the next reply still finds its own.
  const p = client.subscribe('product_changes', () => {});
  sockets[0].frame({ type: 'subscribed', channel: 'product_changes', position: '11' });
  assert.equal(p.state, 'subscribed');
  assert.equal(client.state, 'live');
});

// Resume across reloads.

class MemoryStorage {
  constructor() {
    this.m = new Map();
  }
  getItem(k) {
    return this.m.has(k) ? this.m.get(k) : null;
  }
  setItem(k, v) {
    this.m.set(k, String(v));
  }
  removeItem(k) {
    this.m.delete(k);
  }
}

test('since: subscribe resumes from a given id', () => {
  const { client, sockets } = setup();
  const sub = client.subscribe('order_changes', { since: '1042', filter: { status: 'pending' } }, () => {});
  assert.equal(sub.position, '1042');
  sockets[0].serverOpen();
  assert.deepEqual(sockets[0].sent[0], { type: 'subscribe', channel: 'order_changes', filter: { status: 'pending' }, since: '1042' });
  sockets[0].frame({ type: 'subscribed', channel: 'order_changes', position: '2000' }, ev('1050', 'order_changes', 'order:updated', { id: 1 }));
  assert.equal(sub.resumed, 'exact');
  assert.equal(sub.position, '1050', 'the replay moves the position, not the subscribed position');
  // Subscribing while connected with since also sends it.
  client.subscribe('product_changes', { since: 7 }, () => {});
  assert.equal(sockets[0].sent.at(-1).since, '7');
});

test('storage: the last ids survive a reload; unsubscribe forgets them', () => {
  const storage = new MemoryStorage();
  storage.setItem('other', 'kept');
  const first = setup({ storage });
  first.client.subscribe('order_changes', () => {});
  first.client.subscribe('product_changes', () => {});
  first.sockets[0].serverOpen();
  first.sockets[0].ackSubscribes('100');
  first.sockets[0].frame(ev('101', 'order_changes', 'order:updated', { id: 1 }), ev('103', 'order_changes', 'order:updated', { id: 1 }));
  assert.deepEqual(JSON.parse(storage.getItem('shopstream.positions')), { order_changes: '103', product_changes: '100' });
  first.client.close(); // the page goes away

  // The reloaded page resumes; a channel it has not subscribed yet keeps its id.
  const second = setup({ storage });
  const orders = second.client.subscribe('order_changes', () => {});
  assert.equal(orders.position, '103');
  second.sockets[0].serverOpen();
  assert.deepEqual(second.sockets[0].sent, [{ type: 'subscribe', channel: 'order_changes', since: '103' }]);
  second.sockets[0].frame({ type: 'subscribed', channel: 'order_changes', position: '200' }, ev('150', 'order_changes', 'order:created', { id: 2 }));
  assert.equal(orders.resumed, 'exact');
  assert.deepEqual(JSON.parse(storage.getItem('shopstream.positions')), { order_changes: '150', product_changes: '100' });
  second.client.subscribe('product_changes', () => {});
  assert.equal(second.sockets[0].sent.at(-1).since, '100');
  orders();
  assert.deepEqual(JSON.parse(storage.getItem('shopstream.positions')), { product_changes: '100' });
  assert.equal(storage.getItem('other'), 'kept');

  // Garbage in the storage, or a storage that throws, is not fatal.
  const bad = new MemoryStorage();
  bad.setItem('shopstream.positions', '{"order_changes":"drop table"');
  const third = setup({ storage: bad, storageKey: 'shopstream.positions' });
  third.client.subscribe('order_changes', () => {});
  third.sockets[0].serverOpen();
  assert.deepEqual(third.sockets[0].sent, [{ type: 'subscribe', channel: 'order_changes' }]);
  const throwing = { getItem: () => { throw new Error('denied'); }, setItem: () => { throw new Error('full'); } };
  const fourth = setup({ storage: throwing });
  fourth.client.subscribe('order_changes', () => {});
  fourth.sockets[0].serverOpen();
  fourth.sockets[0].ackSubscribes('5');
  assert.equal(fourth.client.state, 'live');
});

// Exact numbers.

test('numbers: "string" keeps big integers and long numerics exact; "bigint" gives BigInt', () => {
  const raw = '{"type":"event","id":"9007199254740993","channel":"order_changes","event":"order:updated",'
    + '"data":{"id":9007199254740993,"total":12345678901234567.89,"price":99.99,"qty":3},"timestamp":"t"}';
  for (const [numbers, id] of [['string', '9007199254740993'], ['bigint', 9007199254740993n], ['number', 9007199254740992]]) {
    const { client, sockets } = setup({ numbers });
    const got = [];
    client.subscribe('order_changes', (e) => got.push(e));
    sockets[0].serverOpen();
    sockets[0].ackSubscribes('1');
    sockets[0].onmessage({ data: raw });
    assert.equal(got.length, 1, numbers);
    assert.equal(got[0].id, '9007199254740993');
    assert.equal(got[0].data.id, id, numbers);
    assert.equal(got[0].data.total, numbers === 'number' ? 12345678901234568 : '12345678901234567.89');
    assert.equal(got[0].data.price, 99.99);
    assert.equal(got[0].data.qty, 3);
  }
  // A function gets every number's text.
  const { client, sockets } = setup({ numbers: (t) => `#${t}` });
  const got = [];
  client.subscribe('order_changes', (e) => got.push(e.data));
  sockets[0].serverOpen();
  sockets[0].ackSubscribes('1');
  sockets[0].onmessage({ data: raw });
  assert.deepEqual(got[0], { id: '#9007199254740993', total: '#12345678901234567.89', price: '#99.99', qty: '#3' });
});

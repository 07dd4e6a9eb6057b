// The shopstream dashboard: login, live feed, channel toggles, filters, stats.
// Plain ES module, no build step; the socket logic lives in /shopstream.js.
import { connect, parseEventName } from '/shopstream.js';

const CHANNELS = ['order_changes', 'product_changes', 'customer_changes', 'shipment_changes', 'transaction_changes'];
// The feed keeps the newest MAX_ROWS rows in the DOM. A burst is rendered a
// slice per animation frame: each frame builds rows for about FRAME_BUDGET ms
// (at least MIN_PER_FRAME rows), so that no frame becomes a long task.
const MAX_ROWS = 200;
const FRAME_BUDGET = 4;
const MIN_PER_FRAME = 8;
const STATS_EVERY = 5000; // unless #stats says otherwise in data-every (ms)
const STATE_TEXT = { connecting: 'connecting', live: 'live', reconnecting: 'reconnecting', 'login-required': 'login required', closed: 'login required' };

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

// ---- settings (kept in localStorage) ----

const store = {
  get(key, fallback) {
    try {
      const v = localStorage.getItem('shopstream.' + key);
      return v == null ? fallback : JSON.parse(v);
    } catch {
      return fallback;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem('shopstream.' + key, JSON.stringify(value));
    } catch {
      /* private mode */
    }
  },
};
let enabled = new Set(store.get('channels', CHANNELS).filter((c) => CHANNELS.includes(c)));
let filters = store.get('filters', {});
if (typeof filters !== 'object' || filters === null || Array.isArray(filters)) filters = {};

// ---- connection ----

let client = null;
const unsubs = new Map();
let statsTimer = null;

function setState(state) {
  const s = $('state');
  s.textContent = STATE_TEXT[state] || state;
  s.dataset.state = state;
}

function subscribe(channel) {
  if (!client) return;
  const filter = filters[channel];
  unsubs.set(channel, client.subscribe(channel, { filter: filter && Object.keys(filter).length ? filter : null }, enqueue));
  markChannel(channel, '');
}

function unsubscribe(channel) {
  const stop = unsubs.get(channel);
  if (stop) stop();
  unsubs.delete(channel);
}

function startApp(user) {
  $('login-view').hidden = true;
  $('app-view').hidden = false;
  $('logout').hidden = false;
  const u = $('user');
  u.textContent = `${user.name || user.email} · ${user.role}`;
  u.title = user.email;
  u.hidden = false;
  hideNotice();
  if (client) client.close();
  client = connect({
    onState: (s) => {
      if (s === 'closed') return;
      setState(s);
      // Live: every subscription is in, so the stats are worth showing now
      // rather than at the next tick.
      if (s === 'live') refreshStats();
      if (s === 'login-required') showLogin('Your session ended. Log in again.');
    },
    onResync: (channel) => notice(`${label(channel)}: some changes are older than the server keeps. Reload that data.`),
    onError: (err) => {
      if (err.channel && (err.code === 'forbidden' || err.code === 'unknown_channel')) {
        markChannel(err.channel, err.code === 'forbidden' ? 'not allowed for your role' : 'unknown');
        unsubscribe(err.channel);
      } else if (err.channel) {
        notice(`${label(err.channel)}: ${err.message}`);
      } else if (err.code !== 'network') {
        notice(err.message);
      }
    },
  });
  for (const c of CHANNELS) if (enabled.has(c)) subscribe(c);
  refreshStats();
  clearInterval(statsTimer);
  statsTimer = setInterval(refreshStats, Number($('stats').dataset.every) || STATS_EVERY);
}

function showLogin(note) {
  clearInterval(statsTimer);
  statsTimer = null;
  if (client) {
    const c = client;
    client = null;
    c.close();
  }
  unsubs.clear();
  setState('login-required');
  $('app-view').hidden = true;
  $('logout').hidden = true;
  $('user').hidden = true;
  $('login-view').hidden = false;
  showBanner($('login-note'), note || '');
  $('password').value = '';
  $('login-error').textContent = '';
  ($('email').value ? $('password') : $('email')).focus();
}

async function refreshStats() {
  try {
    const r = await fetch('/api/v1/ws/stats', { headers: { Accept: 'application/json' } });
    if (r.status === 401) {
      if (client) showLogin('Your session ended. Log in again.');
      return;
    }
    if (!r.ok) return;
    const body = await r.json();
    for (const dd of $('stats').querySelectorAll('dd')) renderStat(dd, body.data ? body.data[dd.dataset.stat] : undefined);
  } catch {
    /* the server is away; the socket state says so */
  }
}

// A stat is a number or string, a list (activeChannels) or a map of counts
// (subscriptions per channel): lists and maps show their size, with the
// details below.
function renderStat(dd, v) {
  dd.replaceChildren();
  if (v === undefined || v === null) {
    dd.textContent = '–';
    return;
  }
  let detail = '';
  let main = String(v);
  if (Array.isArray(v)) {
    main = String(v.length);
    detail = v.map(label).join(', ');
  } else if (typeof v === 'object') {
    const entries = Object.entries(v);
    main = String(entries.reduce((n, [, c]) => n + (Number(c) || 0), 0));
    detail = entries.map(([k, c]) => `${label(k)} ${c}`).join(', ');
  }
  dd.append(el('span', 'stat', main));
  if (detail) dd.append(el('small', 'muted', detail));
}

// ---- login / logout ----

$('login').addEventListener('submit', async (e) => {
  e.preventDefault();
  const err = $('login-error');
  const btn = $('login-submit');
  err.textContent = '';
  btn.disabled = true;
  try {
    const r = await fetch('/api/auth/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ email: $('email').value.trim(), password: $('password').value }),
    });
    const body = await r.json().catch(() => ({}));
    if (r.ok) {
      $('password').value = '';
      startApp(body.user);
      return;
    }
    let msg = body.message || `login failed (${r.status})`;
    const retry = r.headers.get('Retry-After');
    if (r.status === 429 && retry) msg += ` (retry in ${retry} s)`;
    err.textContent = msg;
  } catch {
    err.textContent = 'The server cannot be reached.';
  } finally {
    btn.disabled = false;
  }
});

$('logout').addEventListener('click', async () => {
  try {
    await fetch('/api/auth/logout', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
  } catch {
    /* the session ends with the server anyway */
  }
  showLogin();
});

// ---- channels and filters ----

const label = (channel) => channel.replace(/_changes$/, '');

function markChannel(channel, problem) {
  const box = $('channels').querySelector(`[data-channel="${channel}"]`);
  if (!box) return;
  box.classList.toggle('denied', !!problem);
  box.querySelector('.why').textContent = problem ? ` (${problem})` : '';
}

function buildChannels() {
  const wrap = $('channels');
  const sel = $('filter-channel');
  for (const c of CHANNELS) {
    const lab = el('label', 'toggle');
    lab.dataset.channel = c;
    const box = el('input');
    box.type = 'checkbox';
    box.checked = enabled.has(c);
    box.name = c;
    box.addEventListener('change', () => {
      if (box.checked) {
        enabled.add(c);
        subscribe(c);
      } else {
        enabled.delete(c);
        unsubscribe(c);
        markChannel(c, '');
      }
      store.set('channels', [...enabled]);
    });
    const dot = el('span', `dot entity-${label(c)}`);
    lab.append(box, dot, el('span', 'name', label(c) + 's'), el('span', 'why muted'));
    wrap.append(lab);
    const opt = el('option', '', label(c) + 's');
    opt.value = c;
    sel.append(opt);
  }
  sel.addEventListener('change', showFilter);
  showFilter();
}

function showFilter() {
  const f = filters[$('filter-channel').value];
  $('filter').value = f && Object.keys(f).length ? JSON.stringify(f, null, 2) : '';
  $('filter-error').textContent = '';
}

function parseFilter(text) {
  if (!text.trim()) return {};
  const v = JSON.parse(text);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('the filter must be a JSON object');
  for (const [k, val] of Object.entries(v)) {
    if (val !== null && typeof val === 'object' && !Array.isArray(val)) throw new Error(`"${k}": use a value or a list of values`);
  }
  return v;
}

function applyFilter(text) {
  const channel = $('filter-channel').value;
  let f;
  try {
    f = parseFilter(text);
  } catch (e) {
    $('filter-error').textContent = e.message;
    return;
  }
  $('filter-error').textContent = '';
  if (Object.keys(f).length) filters[channel] = f;
  else delete filters[channel];
  store.set('filters', filters);
  showFilter();
  if (enabled.has(channel)) subscribe(channel);
}

$('filter-apply').addEventListener('click', () => applyFilter($('filter').value));
$('filter-clear').addEventListener('click', () => applyFilter(''));

// ---- the feed: queued, rendered a slice per animation frame, capped ----

let queue = []; // oldest first, as received; never more than MAX_ROWS (older ones would be dropped anyway)
let scheduled = false;
let paused = false;
let total = 0;
$('feed').dataset.max = String(MAX_ROWS);

function schedule() {
  if (paused || scheduled || !queue.length) return;
  scheduled = true;
  $('feed').setAttribute('aria-busy', 'true');
  requestAnimationFrame(flush);
}

function enqueue(msg) {
  total++;
  queue.push(msg);
  if (queue.length > MAX_ROWS) queue.splice(0, queue.length - MAX_ROWS);
  schedule();
}

// Event ids are decimal strings: compared by length, then as text.
const newer = (a, b) => a.length > b.length || (a.length === b.length && a > b);

// flush renders the newest queued events for about FRAME_BUDGET ms and puts
// each where it belongs in the feed (newest first), in as few insertions as
// possible, then drops the rows past MAX_ROWS in one removal; what is left
// waits for the next frame. Newest first means the first frame of a burst
// fills the screen and the later ones add rows below it, off screen, where
// content-visibility spares their layout and paint. flush reads no layout.
function flush() {
  scheduled = false;
  const feed = $('feed');
  if (!paused && queue.length) {
    const start = performance.now();
    let at = feed.firstElementChild; // the first row older than the row being placed
    let index = 0; // at's position in the feed
    let frag = null;
    let fragAt = null;
    const place = () => {
      if (frag) feed.insertBefore(frag, fragAt);
      frag = null;
    };
    let rendered = 0;
    while (queue.length && (rendered < MIN_PER_FRAME || performance.now() - start < FRAME_BUDGET)) {
      const msg = queue.pop();
      const id = String(msg.id);
      while (at && newer(at.dataset.id, id)) {
        place();
        at = at.nextElementSibling;
        index++;
      }
      if (index >= MAX_ROWS) {
        queue = []; // this one and every older one would be dropped at once
        break;
      }
      if (!frag) {
        frag = document.createDocumentFragment();
        fragAt = at;
      }
      frag.append(renderEvent(msg));
      rendered++;
      index++;
    }
    place();
    if (feed.childElementCount > MAX_ROWS) {
      const extra = document.createRange();
      extra.setStartBefore(feed.children[MAX_ROWS]);
      extra.setEndAfter(feed.lastElementChild);
      extra.deleteContents();
    }
  }
  const shown = feed.childElementCount;
  $('empty').hidden = shown > 0;
  $('feed-count').textContent = `${total} event${total === 1 ? '' : 's'}${shown < total ? `, newest ${shown} shown` : ''}`;
  if (paused || !queue.length) feed.setAttribute('aria-busy', 'false');
  schedule();
}

function fmt(v) {
  if (v === undefined) return '—';
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > 80 ? s.slice(0, 79) + '…' : s;
}

// One formatter, made (and its locale data loaded) at start: toLocaleTimeString
// would make one per row, a cost that shows in a burst.
const TIME = new Intl.DateTimeFormat([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
TIME.format(0);

function timeOf(ts) {
  const d = new Date(ts);
  return isNaN(d) ? '' : TIME.format(d);
}

const SUMMARY_SKIP = new Set(['id', 'created_at', 'updated_at', 'changed_fields']);

function renderEvent(msg) {
  const [entity, action] = parseEventName(msg.event || '');
  const data = msg.data || {};
  const li = el('li', `ev ev-${action}`);
  li.dataset.id = msg.id;
  li.dataset.event = msg.event;

  const head = el('div', 'ev-head');
  head.append(el('span', `badge entity-${entity}`, entity), el('span', `action action-${action}`, action));
  if (data.id !== undefined) head.append(el('span', 'rowid', `#${data.id}`));
  if (msg.actor) head.append(el('span', 'actor', msg.actor));
  const t = el('time', 'muted', timeOf(msg.timestamp));
  t.dateTime = msg.timestamp || '';
  head.append(el('span', 'spacer'), t, el('span', 'evid muted', msg.id));
  li.append(head);

  const body = el('ul', 'changes');
  // shopstream's changed fields sit at the top level when the row has a column
  // named changed_fields, in data otherwise.
  const changed = msg.changed_fields || data.changed_fields;
  if (action === 'updated' && changed) {
    const prev = msg.previous || {};
    for (const [k, v] of Object.entries(changed)) {
      const row = el('li', 'change');
      row.append(el('code', 'field', k), el('span', 'old', fmt(prev[k])), el('span', 'arrow', '→'), el('span', 'new', fmt(v)));
      body.append(row);
    }
  } else if (action === 'truncated') {
    body.append(el('li', 'muted', 'every row removed'));
  } else {
    let n = 0;
    for (const [k, v] of Object.entries(data)) {
      if (SUMMARY_SKIP.has(k) || n++ >= 4) continue;
      const row = el('li', 'kv');
      row.append(el('code', 'field', k), el('span', '', fmt(v)));
      body.append(row);
    }
  }
  if (body.childElementCount) li.append(body);

  const det = el('details', 'json');
  det.append(el('summary', '', 'JSON'));
  det.addEventListener('toggle', () => {
    if (!det.open || det.querySelector('pre')) return;
    // A scroll container of its own: focusable, so the keyboard scrolls it.
    const pre = el('pre', '', JSON.stringify(msg, null, 2));
    pre.tabIndex = 0;
    pre.setAttribute('role', 'region');
    pre.setAttribute('aria-label', `JSON of event ${msg.id}`);
    det.append(pre);
  });
  li.append(det);
  return li;
}

$('pause').addEventListener('click', () => {
  paused = !paused;
  $('pause').textContent = paused ? 'Resume' : 'Pause';
  $('pause').setAttribute('aria-pressed', String(paused));
  schedule();
});

$('clear').addEventListener('click', () => {
  $('feed').replaceChildren();
  queue = [];
  total = 0;
  flush();
});

// ---- notices: a text and a close button ----

function showBanner(box, text) {
  box.querySelector('.text').textContent = text;
  box.hidden = !text;
}

for (const box of document.querySelectorAll('.dismissable')) {
  box.querySelector('.close').addEventListener('click', () => {
    box.hidden = true;
  });
}

const notice = (text) => showBanner($('notice'), text);

function hideNotice() {
  $('notice').hidden = true;
}

// ---- start: /api/auth/me decides ----

buildChannels();
setState('connecting');
fetch('/api/auth/me', { headers: { Accept: 'application/json' } })
  .then(async (r) => {
    if (r.ok) startApp((await r.json()).user);
    else showLogin();
  })
  .catch(() => showLogin('The server cannot be reached.'));

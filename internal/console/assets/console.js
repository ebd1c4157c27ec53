// microshop console: draws the running shop from its own telemetry.
//
// The page signs in as the admin, asks the console for the topology, then
// reads one server-sent event stream: every finished span is drawn as a dot
// moving along its edge, and the stats and invariants events update the
// nodes, breakers, counters and the audit strip. Everything else (chaos,
// sagas, traces, API documents) is asked of the gateway's admin APIs when a
// person clicks. No framework and no build step: the browser runs this file
// as it is, and the gateway serves it from the binary.
//
// Three views tell the shop's story: the Monolith (the old app alone, with
// its one database), the Migration (the strangler-fig facade moving its
// routes to the services, one at a time) and the Microservices (today's
// shop, the live diagram). The URL's hash names the view.

const SVG = 'http://www.w3.org/2000/svg';
const TOKEN_KEY = 'microshop.console.token';
const EXPIRY_KEY = 'microshop.console.expires';

// Drawing bounds: a busy shop finishes hundreds of spans a second, and a
// page that tried to draw them all would stutter. Past these, spans are
// counted and not drawn.
const MAX_FLOWS = 60;
const HOP_MS = 900;
const EDGE_SPACING_MS = 110;
const PULSE_GAP_MS = 350;
const REPLAY_STEP_MS = 850;
const ORDERS_SHOWN = 15;

// The layout: a fixed place for every kind of node, so the picture reads the
// same every time. The viewBox is 1000 x 660.
const VIEW = { w: 1000, h: 660 };
const GATEWAY = { x: 180, y: 330, w: 158, h: 66 };
const REGISTRY = { x: 180, y: 108, w: 158, h: 58 };
const LEGACY = { x: 180, y: 560, w: 158, h: 58 };
const CLIENTS_X = 34;
const SERVICE = { x: 452, w: 176, h: 58, top: 62, bottom: 598 };
const DB = { dx: 128, w: 42, h: 40 };
const BROKER = { x: 725, y: 22, w: 250, h: 616 };
const COLUMN = ['users', 'catalog', 'orders', 'payments', 'inventory', 'shipping'];
const FAULTABLE = new Set(['users', 'catalog', 'inventory', 'orders', 'payments', 'shipping']);

const SAGA_STYLES = {
  orchestration: 'An orchestrator in orders tells payments, inventory and shipping what to do, in turn, and runs compensations in reverse on a failure.',
  choreography: 'A chain of events, no coordinator: payments, then inventory, then shipping, each reacting to the one before.',
  parallel: 'Inventory reserves and payments charges at once; shipping waits for both; either failing compensates the other.',
};

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  expiresAt: Number(sessionStorage.getItem(EXPIRY_KEY)) || 0,
  expiryTimer: 0,
  nodes: new Map(), // name -> the topology's node, placed: {x, y, w, h, el, meta, badges, ring}
  edges: new Map(), // "from>to" -> {from, to, kind, el, path, len, lastStart}
  topics: new Map(), // topic -> {bg, countEl}
  topicCounts: new Map(), // topic -> messages seen, kept while the diagram is redrawn
  stats: null, // the last stats event
  selected: '',
  flows: [],
  raf: 0,
  lastPulse: new Map(),
  dropped: 0, // spans not drawn, to keep the page smooth
  rateWindow: [], // when spans arrived, for the spans/s figure
  published: [], // when producer spans ended, for the broker's rate
  delivered: [], // when consumer spans ended
  stream: null,
  faults: new Map(), // service -> fault state of its first instance
  provider: null,
  docs: new Map(), // service -> parsed OpenAPI
  replay: null,
  sagaCursor: '', // the order just before the ones listed: where paging resumes
  sagaCache: new Map(),
  sagaPinned: new Map(), // orders a person opened, kept in view
  sagaTimer: 0,
  tracesTimer: 0,
  view: 'microservices', // monolith, migration or microservices
  topology: null,
  drawn: '', // what the diagram shows now: monolith or microservices
  viewTimer: 0,
  viewTicks: 0,
  facade: {
    routes: [], // the facade's last answer
    error: '',
    samples: new Map(), // route -> [{t, legacy, service}]: request counts seen, for the split
    pending: new Set(), // routes this page is moving
    failed: new Map(), // route -> the problem this page's last move of it met
    asked: 0, // polls started
    fresh: 0, // polls started before this one are stale (a move answered since)
    inflight: false,
  },
  legacy: { stats: null, error: '', inflight: false },
};

// ---------------------------------------------------------------- DOM helpers

const $ = (sel, root = document) => root.querySelector(sel);

// h builds an HTML element; text always goes in as text, never as markup.
function h(tag, props = {}, ...kids) {
  const el = document.createElement(tag);
  setProps(el, props);
  for (const kid of kids.flat(Infinity)) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

// s builds an SVG element.
function s(tag, props = {}, ...kids) {
  const el = document.createElementNS(SVG, tag);
  setProps(el, props);
  for (const kid of kids.flat(Infinity)) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function setProps(el, props) {
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === 'class') el.setAttribute('class', v);
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function setText(sel, text) {
  const el = typeof sel === 'string' ? $(sel) : sel;
  if (el && el.textContent !== String(text)) el.textContent = text;
}

function toast(message, bad = false) {
  const box = $('#toasts');
  const el = h('div', { class: bad ? 'toast bad' : 'toast', text: message });
  box.append(el);
  while (box.children.length > 4) box.firstChild.remove();
  setTimeout(() => el.remove(), bad ? 7000 : 4500);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const fmtInt = (v) => Math.round(num(v)).toLocaleString('en-US');
const fmtRate = (v) => (num(v) >= 100 ? Math.round(v).toString() : num(v).toFixed(1));
const fmtPct = (v) => `${(num(v) * 100).toFixed(num(v) > 0 && num(v) < 0.1 ? 1 : 0)}%`;
function fmtMs(v) {
  v = num(v);
  if (v >= 1000) return `${(v / 1000).toFixed(2)} s`;
  return `${v >= 10 ? Math.round(v) : v.toFixed(1)} ms`;
}
function fmtMoney(cents, currency = 'USD') {
  try {
    return new Intl.NumberFormat('en-US', { style: 'currency', currency }).format(num(cents) / 100);
  } catch {
    return `${(num(cents) / 100).toFixed(2)} ${currency}`;
  }
}
function ago(iso) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '';
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  return `${Math.floor(s / 3600)}h ago`;
}
const shortId = (id) => String(id || '').slice(-8);

// ---------------------------------------------------------------- API

class AuthError extends Error {}

// api calls the gateway with the admin's token. A 401 or 403 ends the
// session; any other failure throws the problem's detail.
async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}`, Accept: 'application/json' };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 401 || res.status === 403) {
    signOut(res.status === 403 ? 'That account is not an admin: sign in as the shop\'s admin.' : 'Your session ended: sign in again.');
    throw new AuthError(`${method} ${path}: ${res.status}`);
  }
  const type = res.headers.get('Content-Type') || '';
  const payload = type.includes('json') ? await res.json().catch(() => null) : await res.text();
  if (!res.ok) {
    const detail = payload && typeof payload === 'object' ? payload.detail || payload.title : '';
    throw new Error(detail || `${method} ${path} answered ${res.status}`);
  }
  return payload;
}

// attempt runs an action a person asked for, and shows its failure.
async function attempt(what, fn) {
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof AuthError)) toast(`${what}: ${err.message}`, true);
    return undefined;
  }
}

// ---------------------------------------------------------------- sign-in

function showSignIn(message = '') {
  $('#app').hidden = true;
  $('#signin').hidden = false;
  setText('#signin-error', message);
  $('#signin-password').focus();
}

async function signIn(ev) {
  ev.preventDefault();
  const email = $('#signin-email').value.trim();
  const password = $('#signin-password').value;
  const button = $('#signin-submit');
  button.disabled = true;
  setText('#signin-error', '');
  try {
    const res = await fetch('/api/v1/auth/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ email, password }),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok || !body.access_token) {
      setText('#signin-error', res.status === 401 ? 'Wrong email or password.' : body.detail || `Sign-in failed (${res.status}).`);
      return;
    }
    state.token = body.access_token;
    state.expiresAt = Date.now() + num(body.expires_in) * 1000;
    sessionStorage.setItem(TOKEN_KEY, state.token);
    sessionStorage.setItem(EXPIRY_KEY, String(state.expiresAt));
    $('#signin-password').value = '';
    await enter();
  } catch (err) {
    setText('#signin-error', `Could not reach the gateway: ${err.message}`);
  } finally {
    button.disabled = false;
  }
}

function signOut(message = '') {
  state.token = '';
  state.expiresAt = 0;
  clearTimeout(state.expiryTimer);
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(EXPIRY_KEY);
  if (state.stream) state.stream.abort();
  state.stream = null;
  clearInterval(state.sagaTimer);
  clearInterval(state.tracesTimer);
  clearInterval(state.viewTimer);
  closeReplay();
  showSignIn(message);
}

async function enter() {
  // The token stops working when it expires; say so then, rather than let
  // the page go quiet.
  clearTimeout(state.expiryTimer);
  if (state.expiresAt) {
    const left = state.expiresAt - Date.now();
    if (left <= 0) {
      signOut('Your session expired: sign in again.');
      return;
    }
    state.expiryTimer = setTimeout(() => signOut('Your session expired: sign in again.'), Math.min(left, 2 ** 31 - 1));
  }
  $('#signin').hidden = true;
  $('#app').hidden = false;
  let topology;
  try {
    topology = await api('GET', '/api/v1/console/topology');
  } catch (err) {
    if (!(err instanceof AuthError)) toast(`Could not read the topology: ${err.message}`, true);
    return;
  }
  state.topology = topology;
  state.drawn = '';
  showView(viewFromHash());
  if (state.selected) selectNode(state.selected);
  else switchTab($('#sagas').hidden ? 'panel' : 'sagas');
  runStream();
  attempt('Reading the saga style', loadSettings);
}

// ---------------------------------------------------------------- diagram

function placeNodes(nodes) {
  const services = nodes
    .filter((n) => n.kind === 'service')
    .sort((a, b) => rank(a.name) - rank(b.name) || a.name.localeCompare(b.name));
  const step = services.length > 1 ? (SERVICE.bottom - SERVICE.top) / (services.length - 1) : 0;
  const placed = [];
  services.forEach((n, i) => {
    const y = services.length > 1 ? SERVICE.top + i * step : VIEW.h / 2;
    placed.push({ ...n, x: SERVICE.x, y, w: SERVICE.w, h: SERVICE.h });
  });
  for (const n of nodes) {
    if (n.kind === 'gateway') placed.push({ ...n, ...GATEWAY });
    else if (n.kind === 'registry') placed.push({ ...n, ...REGISTRY });
    else if (n.kind === 'legacy') placed.push({ ...n, ...LEGACY });
    else if (n.kind === 'broker') placed.push({ ...n, x: BROKER.x + BROKER.w / 2, y: BROKER.y + BROKER.h / 2, w: BROKER.w, h: BROKER.h });
  }
  return placed;
}

function rank(name) {
  const i = COLUMN.indexOf(name);
  return i < 0 ? COLUMN.length : i;
}

function drawDiagram(topo) {
  const svg = $('#diagram');
  svg.replaceChildren();
  state.nodes.clear();
  state.edges.clear();
  state.topics.clear();
  state.flows = [];

  svg.append(s('defs', {},
    marker('arrow-http', 'var(--http)'),
    marker('arrow-event', 'var(--event)'),
    marker('arrow-open', 'var(--bad)'),
  ));
  const edgeLayer = s('g', { id: 'edges' });
  const nodeLayer = s('g', { id: 'nodes' });
  const flowLayer = s('g', { id: 'flows' });
  svg.append(edgeLayer, nodeLayer, flowLayer);

  for (const n of placeNodes(topo.nodes || [])) state.nodes.set(n.name, n);

  // The clients: where every request through the gateway comes from.
  const gw = state.nodes.get('gateway');
  if (gw) {
    nodeLayer.append(s('g', { class: 'clients', id: 'clients' },
      s('circle', { class: 'person', cx: CLIENTS_X, cy: gw.y - 16, r: 7 }),
      s('path', { class: 'person', d: `M${CLIENTS_X - 13} ${gw.y + 8} q13 -18 26 0` }),
      s('text', { x: CLIENTS_X, y: gw.y + 28, 'text-anchor': 'middle' }, 'clients'),
    ));
    addEdge(edgeLayer, { from: 'clients', to: 'gateway', kind: 'http' });
  }

  for (const e of topo.edges || []) {
    if (state.nodes.has(e.from) && state.nodes.has(e.to)) addEdge(edgeLayer, e);
  }
  for (const n of state.nodes.values()) {
    if (n.kind === 'broker') nodeLayer.append(drawBroker(n, topo));
    else nodeLayer.append(drawNode(n));
  }
  if (state.stats) applyStats(state.stats);
}

function marker(id, color) {
  return s('marker', { id, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
    s('path', { d: 'M0 1 L9 5 L0 9 z', fill: color }));
}

function drawNode(n) {
  const left = n.x - n.w / 2;
  const top = n.y - n.h / 2;
  const g = s('g', { id: `node-${n.name}`, class: `node ${n.kind} unknown`, tabindex: 0, role: 'button', 'aria-label': `${n.name}: details` });
  g.append(
    s('rect', { class: 'ring', x: left - 4, y: top - 4, width: n.w + 8, height: n.h + 8, rx: 13 }),
    s('rect', { class: 'box', x: left, y: top, width: n.w, height: n.h, rx: 10 }),
    s('circle', { class: 'health', cx: left + 16, cy: top + 19, r: 5 }),
    s('text', { class: 'name', x: left + 28, y: top + 24 }, n.name),
    s('text', { class: 'meta', x: left + 12, y: top + n.h - 12 }, n.kind === 'service' ? 'waiting for stats' : kindLabel(n.kind)),
  );
  const badge = s('g', { class: 'badges' });
  g.append(badge);
  n.el = g;
  n.meta = g.querySelector('.meta');
  n.badges = badge;
  n.ring = g.querySelector('.ring');
  g.addEventListener('click', () => selectNode(n.name));
  g.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' || ev.key === ' ') {
      ev.preventDefault();
      selectNode(n.name);
    }
  });
  const frag = s('g', {});
  if (n.database) frag.append(drawDatabase(n));
  frag.append(g);
  return frag;
}

function kindLabel(kind) {
  return { gateway: 'entry point', registry: 'service discovery', legacy: 'the old monolith' }[kind] || kind;
}

// drawDatabase draws the node's own store as a cylinder beside it: what the
// picture most wants to say is that no two services share one.
function drawDatabase(n) {
  const cx = n.x + DB.dx;
  const top = n.y - DB.h / 2;
  const rx = DB.w / 2;
  const ry = 6;
  const label = String(n.database).replace(/\s*\(.*\)$/, '');
  return s('g', { class: 'db', id: `db-${n.name}` },
    s('title', {}, `${n.name}'s own database: ${n.database}`),
    s('line', { class: 'tie', x1: n.x + n.w / 2, y1: n.y, x2: cx - rx, y2: n.y }),
    s('path', { class: 'cyl', d: `M${cx - rx} ${top} v${DB.h} a${rx} ${ry} 0 0 0 ${DB.w} 0 v${-DB.h}` }),
    s('ellipse', { class: 'cyl-top', cx, cy: top, rx, ry }),
    s('path', { class: 'cyl', d: `M${cx - rx} ${top + 13} a${rx} ${ry} 0 0 0 ${DB.w} 0`, fill: 'none' }),
    s('text', { class: 'db-label', x: cx, y: top + DB.h + ry + 11, 'text-anchor': 'middle' }, label),
  );
}

// drawBroker draws the broker with its topics, grouped by the domain that
// publishes them, each with a count of the messages seen.
function drawBroker(n, topo) {
  const left = n.x - n.w / 2;
  const top = n.y - n.h / 2;
  const g = s('g', { id: `node-${n.name}`, class: 'node broker unknown', tabindex: 0, role: 'button', 'aria-label': 'broker: details' });
  g.append(
    s('rect', { class: 'ring', x: left - 4, y: top - 4, width: n.w + 8, height: n.h + 8, rx: 14 }),
    s('rect', { class: 'box', x: left, y: top, width: n.w, height: n.h, rx: 12 }),
    s('circle', { class: 'health', cx: left + 16, cy: top + 21, r: 5 }),
    s('text', { class: 'name', x: left + 28, y: top + 26 }, n.name),
    s('text', { class: 'kind', x: left + n.w - 12, y: top + 26, 'text-anchor': 'end' }, 'events'),
  );
  // What waits: in the outboxes, in the queues, and given up on: the
  // numbers a person looks for first.
  const statW = (n.w - 40) / 3;
  const stat = (i, id, label) => {
    const x = left + 10 + i * (statW + 10);
    const bg = s('rect', { class: 'stat-bg', x, y: top + 38, width: statW, height: 24, rx: 6 });
    const t = s('text', { class: 'stat', id, x: x + 8, y: top + 54 }, label);
    g.append(bg, t);
    return { bg, t };
  };
  n.backlog = stat(0, 'broker-backlog', 'outbox 0');
  n.queued = stat(1, 'broker-queued', 'queued 0');
  n.dead = stat(2, 'broker-dead', 'dead 0');

  const topics = brokerTopics(n, topo);
  const domains = [...new Set(topics.map((t) => t.split('.')[0]))];
  const listTop = top + 84;
  const rows = topics.length + domains.length;
  const rowH = rows ? Math.min(22, (top + n.h - 10 - listTop) / rows) : 20;
  let y = listTop;
  for (const d of domains) {
    g.append(s('text', { class: 'topic-domain', x: left + 14, y: y + rowH * 0.72 }, d));
    y += rowH;
    for (const topic of topics.filter((t) => t.split('.')[0] === d)) {
      const bg = s('rect', { class: 'topic-bg', x: left + 8, y: y + 1, width: n.w - 16, height: rowH - 2, rx: 4 });
      const countEl = s('text', { class: 'topic-count', x: left + n.w - 14, y: y + rowH * 0.72, 'text-anchor': 'end' }, fmtInt(state.topicCounts.get(topic)));
      g.append(bg, s('text', { class: 'topic', x: left + 22, y: y + rowH * 0.72 }, topic.slice(d.length + 1)), countEl);
      state.topics.set(topic, { bg, countEl });
      y += rowH;
    }
  }
  n.el = g;
  n.meta = null;
  n.ring = g.querySelector('.ring');
  g.addEventListener('click', () => selectNode(n.name));
  g.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' || ev.key === ' ') {
      ev.preventDefault();
      selectNode(n.name);
    }
  });
  return g;
}

function brokerTopics(n, topo) {
  const set = new Set([...(n.publishes || []), ...(n.consumes || [])]);
  for (const node of topo.nodes || []) for (const t of [...(node.publishes || []), ...(node.consumes || [])]) set.add(t);
  for (const e of topo.edges || []) for (const t of e.topics || []) set.add(t);
  return [...set].sort();
}

function edgeKey(from, to) {
  return `${from}>${to}`;
}

// addEdge draws one edge. Event edges run between a service and the broker:
// the publishing edge above the service's centre line, the consuming one
// below, so the two directions never overlap.
function addEdge(layer, e, dynamic = false) {
  const key = edgeKey(e.from, e.to);
  if (state.edges.has(key)) return state.edges.get(key);
  const d = edgePath(e);
  if (!d) return null;
  const kind = e.kind === 'event' ? 'event' : 'http';
  const faint = e.to === 'registry' && e.from !== 'gateway';
  const cls = ['edge', kind, faint && 'faint', dynamic && 'dynamic'].filter(Boolean).join(' ');
  const path = s('path', { class: 'line', d, 'marker-end': e.from === 'clients' || kind === 'http' ? `url(#arrow-${kind})` : null });
  const g = s('g', { id: `edge-${e.from}-${e.to}`, class: cls, dataset: { from: e.from, to: e.to } }, path);
  if (e.topics && e.topics.length) g.append(s('title', {}, e.topics.join('\n')));
  layer.append(g);
  const len = path.getTotalLength();
  const mid = path.getPointAtLength(len / 2);
  g.append(s('g', { class: 'breaker-mark', transform: `translate(${mid.x} ${mid.y})` },
    s('circle', { r: 9 }),
    s('text', { 'text-anchor': 'middle', y: 3.5 }, '✕'),
  ));
  const edge = { ...e, kind, el: g, path, len, lastStart: 0 };
  state.edges.set(key, edge);
  return edge;
}

function edgePath(e) {
  const a = state.nodes.get(e.from);
  const b = state.nodes.get(e.to);
  if (e.from === 'clients' && b) return `M${CLIENTS_X + 18} ${b.y} L${b.x - b.w / 2 - 3} ${b.y}`;
  if (!a || !b) return '';
  const out = (n) => n.x + n.w / 2 + (n.database ? DB.dx + DB.w / 2 - n.w / 2 : 0);
  if (b.kind === 'broker') return `M${out(a)} ${a.y - 9} L${b.x - b.w / 2} ${a.y - 9}`;
  if (a.kind === 'broker') return `M${a.x - a.w / 2} ${b.y + 9} L${out(b) + 3} ${b.y + 9}`;
  if (a.kind === 'gateway' && b.kind === 'registry') return `M${a.x} ${a.y - a.h / 2} L${b.x} ${b.y + b.h / 2 + 3}`;
  if (a.kind === 'gateway' && b.kind === 'legacy') return `M${a.x} ${a.y + a.h / 2} L${b.x} ${b.y - b.h / 2 - 3}`;
  if (b.kind === 'registry') {
    const x1 = a.x - a.w / 2;
    const y1 = a.y - 14;
    const x2 = b.x + b.w / 2 + 3;
    return `M${x1} ${y1} C${x1 - 90} ${y1}, ${x2 + 70} ${b.y}, ${x2} ${b.y}`;
  }
  if (a.kind === 'service' && b.kind === 'service') {
    // Between two services in the column: an arc on the left of it.
    const x = a.x - a.w / 2;
    const down = b.y > a.y;
    const y1 = a.y + (down ? 12 : -12);
    const y2 = b.y + (down ? -12 : 12);
    const bulge = 26 + Math.abs(b.y - a.y) * 0.18;
    return `M${x} ${y1} C${x - bulge} ${y1}, ${x - bulge} ${y2}, ${x - 3} ${y2}`;
  }
  // Anything else: from the right of a to the left of b, a gentle curve.
  const x1 = a.x + a.w / 2;
  const x2 = b.x - b.w / 2 - 3;
  const dx = Math.max(40, (x2 - x1) / 2);
  return `M${x1} ${a.y} C${x1 + dx} ${a.y}, ${x2 - dx} ${b.y}, ${x2} ${b.y}`;
}

// edgeFor finds the edge a span travels, drawing one the topology did not
// list (a real call is drawn even if nobody predicted it).
function edgeFor(from, to, kind) {
  const e = state.edges.get(edgeKey(from, to));
  if (e) return { edge: e, reverse: false };
  const back = state.edges.get(edgeKey(to, from));
  if (back && kind === 'http') return { edge: back, reverse: true };
  if (!state.nodes.has(from) || !state.nodes.has(to) || from === to) return null;
  const made = addEdge($('#edges'), { from, to, kind }, true);
  return made ? { edge: made, reverse: false } : null;
}

// ---------------------------------------------------------------- live flow

function onSpan(span) {
  const now = performance.now();
  state.rateWindow.push(now);
  if (span.kind === 'producer') state.published.push(now);
  if (span.kind === 'consumer') state.delivered.push(now);
  if (span.kind === 'producer' && span.topic) bumpTopic(span.topic);
  if (state.replay) return; // the replay has the diagram; live spans are counted only
  if (state.view === 'migration') return; // the diagram is hidden
  const route = routeOf(span);
  if (!route) {
    if (span.kind === 'server' || span.kind === 'consumer') pulse(span.service, span.status === 'error');
    return;
  }
  drawFlow(route, span.status === 'error', false, () => {
    if (route.arrive) pulse(route.arrive, span.status === 'error');
  });
}

// routeOf is the drawing rule: a client span goes from its service to the
// peer it called, a producer span from its service to the broker, a
// consumer span from the broker to its service, and the gateway's server
// spans come in from the clients.
function routeOf(span) {
  let from;
  let to;
  let kind = 'http';
  switch (span.kind) {
    case 'client':
      [from, to] = [span.service, span.peer];
      break;
    case 'producer':
      [from, to, kind] = [span.service, 'broker', 'event'];
      break;
    case 'consumer':
      [from, to, kind] = ['broker', span.service, 'event'];
      break;
    case 'server':
      if (span.service !== 'gateway') return null;
      [from, to] = ['clients', 'gateway'];
      break;
    default:
      return null;
  }
  if (!from || !to) return null;
  if (state.view === 'monolith') {
    // The monolith alone: what reaches it comes from its clients, and
    // nothing else is drawn.
    if (to !== 'legacy') return null;
    from = 'clients';
  }
  const found = edgeFor(from, to, kind);
  if (!found) return null;
  return { ...found, arrive: to === 'broker' || to === 'clients' ? '' : to };
}

function drawFlow(route, error, replay, onDone) {
  if (document.hidden || (!replay && state.flows.length >= MAX_FLOWS)) {
    state.dropped++;
    return false;
  }
  const now = performance.now();
  let start = now;
  if (!replay) {
    // A burst on one edge would stack its dots on one spot: space them out,
    // and let the ones that do not fit go, so every edge gets its share.
    start = Math.max(now, route.edge.lastStart + EDGE_SPACING_MS);
    if (start - now > EDGE_SPACING_MS) {
      state.dropped++;
      return false;
    }
    route.edge.lastStart = start;
  }
  const p = route.edge.path.getPointAtLength(route.reverse ? route.edge.len : 0);
  const dot = s('circle', { class: `flow ${error ? 'err' : 'ok'}${replay ? ' replay' : ''}`, r: replay ? 6.5 : 4.5, cx: p.x, cy: p.y });
  if (start > now) dot.setAttribute('opacity', '0');
  $('#flows').append(dot);
  state.flows.push({ el: dot, edge: route.edge, reverse: route.reverse, t0: start, dur: replay ? REPLAY_STEP_MS * 0.8 : HOP_MS, onDone });
  if (!state.raf) state.raf = requestAnimationFrame(frame);
  return true;
}

function frame(now) {
  const flows = state.flows;
  for (let i = flows.length - 1; i >= 0; i--) {
    const f = flows[i];
    const t = (now - f.t0) / f.dur;
    if (t < 0) continue;
    if (t >= 1 || !f.el.isConnected) {
      f.el.remove();
      flows.splice(i, 1);
      if (f.onDone) f.onDone();
      continue;
    }
    if (f.el.hasAttribute('opacity')) f.el.removeAttribute('opacity');
    const e = t < 0.15 ? t * (0.5 + t / 0.3) : t; // a soft start, then even speed
    const p = f.edge.path.getPointAtLength(f.edge.len * (f.reverse ? 1 - e : e));
    f.el.setAttribute('cx', p.x.toFixed(1));
    f.el.setAttribute('cy', p.y.toFixed(1));
  }
  state.raf = flows.length ? requestAnimationFrame(frame) : 0;
}

function pulse(name, error) {
  const n = state.nodes.get(name);
  if (!n || !n.ring || document.hidden) return;
  const now = performance.now();
  if (now - (state.lastPulse.get(name) || 0) < PULSE_GAP_MS) return;
  state.lastPulse.set(name, now);
  n.ring.classList.toggle('err', Boolean(error));
  n.ring.animate([{ opacity: error ? 0.9 : 0.55 }, { opacity: 0 }], { duration: 600, easing: 'ease-out' });
}

function bumpTopic(topic) {
  const n = (state.topicCounts.get(topic) || 0) + 1;
  state.topicCounts.set(topic, n);
  const t = state.topics.get(topic);
  if (!t) return;
  t.countEl.textContent = fmtInt(n);
  if (!document.hidden) t.bg.animate([{ opacity: 0.35 }, { opacity: 0 }], { duration: 700, easing: 'ease-out' });
}

// perSecond is the rate of the last five seconds of a list of times, which
// it trims as it goes.
function perSecond(times) {
  const now = performance.now();
  let cut = 0;
  while (cut < times.length && now - times[cut] > 5000) cut++;
  times.splice(0, cut);
  return times.length / 5;
}

function showFlowRate() {
  perSecond(state.published);
  perSecond(state.delivered);
  const parts = [`${fmtRate(perSecond(state.rateWindow))} spans/s`];
  if (state.dropped) parts.push(`${fmtInt(state.dropped)} not drawn, to keep ${MAX_FLOWS} moving at most`);
  setText('#flow-rate', parts.join(' · '));
}

// ---------------------------------------------------------------- stream

// runStream reads the console's event stream for as long as the session
// lasts, reconnecting with backoff when it breaks. EventSource cannot send
// a bearer token, so it is fetch and a stream reader.
async function runStream() {
  if (state.stream) state.stream.abort();
  const ctrl = new AbortController();
  state.stream = ctrl;
  let backoff = 500;
  while (state.token && !ctrl.signal.aborted) {
    try {
      const res = await fetch('/api/v1/console/stream', {
        headers: { Authorization: `Bearer ${state.token}`, Accept: 'text/event-stream' },
        cache: 'no-store',
        signal: ctrl.signal,
      });
      if (res.status === 401 || res.status === 403) {
        signOut('Your session ended: sign in again.');
        return;
      }
      if (!res.ok || !res.body) throw new Error(`the stream answered ${res.status}`);
      setConn(true);
      backoff = 500;
      await readEvents(res.body, ctrl.signal, dispatch);
    } catch (err) {
      if (ctrl.signal.aborted) return;
    }
    setConn(false);
    await sleep(backoff);
    backoff = Math.min(backoff * 2, 5000);
  }
}

async function readEvents(body, signal, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  signal.addEventListener('abort', () => reader.cancel().catch(() => {}), { once: true });
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let cut;
    while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut).replace(/^\r?\n\r?\n/, '');
      const ev = parseEvent(block);
      if (ev) onEvent(ev.event, ev.data);
    }
  }
}

function parseEvent(block) {
  let event = 'message';
  const data = [];
  for (const line of block.split(/\r?\n/)) {
    if (!line || line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  if (!data.length) return null;
  try {
    return { event, data: JSON.parse(data.join('\n')) };
  } catch {
    return null;
  }
}

function dispatch(event, data) {
  if (event === 'span') onSpan(data);
  else if (event === 'stats') applyStats(data);
  else if (event === 'invariants') applyInvariants(data);
  else if (event === 'expired') signOut('Your session expired: sign in again.');
}

function setConn(live) {
  const el = $('#conn');
  el.classList.toggle('live', live);
  setText(el, live ? 'live' : 'reconnecting');
}

// ---------------------------------------------------------------- stats

function healthOf(name) {
  const st = state.stats && state.stats.services && state.stats.services[name];
  if (!st) {
    // The gateway serves this page and its stream: while the stream is live, it is up.
    if (name === 'gateway' && $('#conn').classList.contains('live')) return 'up';
    return 'unknown';
  }
  if (st.down || st.health === 'down') return 'down';
  return st.health === 'up' ? 'up' : 'unknown';
}

function applyStats(stats) {
  state.stats = stats;
  const services = stats.services || {};
  for (const n of state.nodes.values()) {
    const health = healthOf(n.name);
    for (const c of ['up', 'down', 'unknown']) n.el.classList.toggle(c, c === health);
    const st = services[n.name];
    if (n.meta) setText(n.meta, st ? nodeLine(st) : n.kind === 'service' ? 'no stats yet' : kindLabel(n.kind));
    if (n.badges) drawBadges(n, st);
  }
  if (state.nodes.has('registry') && !services.registry) {
    const instances = Object.values(services).reduce((sum, st) => sum + (st.instances || []).length, 0);
    setText(state.nodes.get('registry').meta, `${instances} instances listed`);
  }
  applyBreakers(services);
  applyBroker(services);
  applyCounters(stats);
  if (stats.saga_mode) showSagaMode(stats.saga_mode);
  if (state.selected) refreshLive();
  showFlowRate();
}

function nodeLine(st) {
  const parts = [`${fmtRate(st.rate)}/s`, `${fmtPct(st.errors)} err`];
  if (num(st.p99_ms) > 0) parts.push(`p99 ${fmtMs(st.p99_ms).replace(' ', '')}`);
  return parts.join(' · ');
}

// drawBadges marks the faults injected into a node, so a person sees at a
// glance what was broken on purpose.
function drawBadges(n, st) {
  const want = [];
  if (st && st.down) want.push({ text: 'DOWN', bad: true });
  if (st && num(st.latency_ms) > 0) want.push({ text: `+${Math.round(st.latency_ms)} ms` });
  if (st && num(st.error_rate_fault) > 0) want.push({ text: `${Math.round(st.error_rate_fault * 100)}% errors`, bad: true });
  if (st && (st.instances || []).length > 1) want.push({ text: `×${st.instances.length}` });
  const sig = JSON.stringify(want);
  if (n.badges.dataset.sig === sig) return;
  n.badges.dataset.sig = sig;
  n.badges.replaceChildren();
  // The badges sit on the card's top edge, right-aligned, clear of its name.
  let x = n.x + n.w / 2 - 8;
  const y = n.y - n.h / 2 - 9;
  for (const b of want) {
    const w = 14 + b.text.length * 6.4;
    x -= w;
    n.badges.append(
      s('rect', { class: `badge-bg${b.bad ? ' bad' : ''}`, x, y, width: w, height: 16, rx: 8 }),
      s('text', { class: `badge${b.bad ? ' bad' : ''}`, x: x + w / 2, y: y + 11.5, 'text-anchor': 'middle' }, b.text),
    );
    x -= 4;
  }
}

// applyBreakers marks every edge by the state of the breaker that guards it:
// the caller's breaker for the callee (or for the broker, on its publishing
// edge).
function applyBreakers(services) {
  const states = new Map();
  for (const [from, st] of Object.entries(services)) {
    for (const [to, b] of Object.entries(st.breakers || {})) states.set(edgeKey(from, to), b);
  }
  for (const [key, e] of state.edges) {
    const b = states.get(key);
    e.el.classList.toggle('breaker-open', b === 'open');
    e.el.classList.toggle('breaker-half-open', b === 'half-open');
    e.path.setAttribute('marker-end', e.kind === 'http' ? `url(#arrow-${b === 'open' ? 'open' : 'http'})` : '');
  }
}

function applyBroker(services) {
  const broker = state.nodes.get('broker');
  if (!broker || !broker.backlog) return;
  const { backlog, queued, dead } = brokerTotals(services);
  setText(broker.backlog.t, `outbox ${fmtInt(backlog)}`);
  setText(broker.queued.t, `queued ${fmtInt(queued)}`);
  setText(broker.dead.t, `dead ${fmtInt(dead)}`);
  broker.backlog.bg.classList.toggle('warn', backlog > 0);
  broker.queued.bg.classList.toggle('warn', queued > 0);
  broker.dead.bg.classList.toggle('bad', dead > 0);
}

function applyCounters(stats) {
  const o = stats.orders || {};
  setText('#count-completed', fmtInt(o.completed));
  setText('#count-cancelled', fmtInt(o.cancelled));
  setText('#count-pending', fmtInt(o.pending));
  const t = stats.traffic || {};
  setText('#traffic-sent', fmtInt(t.sent));
  setText('#traffic-ok', fmtInt(t.ok));
  setText('#traffic-failed', fmtInt(t.failed));
  showTraffic(t);
}

function showTraffic(t) {
  const running = Boolean(t.running);
  $('#traffic-stop').disabled = !running;
  setText('#traffic-start', running ? 'Set rate' : 'Start traffic');
  const el = $('#traffic-state');
  el.classList.toggle('running', running);
  setText(el, running ? `running at ${fmtRate(t.rate)}/s` : t.draining ? 'finishing…' : 'idle');
}

function applyInvariants(report) {
  const box = $('#invariants');
  const chips = (report.checks || []).map((c) =>
    h('span', { class: `chip ${c.ok ? 'ok' : 'bad'}`, title: c.detail || (c.ok ? 'holds' : 'broken') }, c.name));
  if (!chips.length) chips.push(h('span', { class: `chip ${report.ok ? 'ok' : 'bad'}` }, report.ok ? 'all hold' : 'broken'));
  chips.push(h('span', { class: 'chip-time', text: `checked ${new Date().toLocaleTimeString()}` }));
  box.replaceChildren(...chips);
}

// ---------------------------------------------------------------- traffic

async function startTraffic() {
  const input = $('#traffic-rate');
  const rate = Math.round(Number(input.value));
  if (!(rate >= 1 && rate <= 500)) {
    toast('The rate must be between 1 and 500 requests a second.', true);
    input.focus();
    return;
  }
  const t = await attempt('Starting traffic', () => api('PUT', '/api/v1/console/traffic', { rate }));
  if (t) showTraffic(t);
}

async function stopTraffic() {
  const t = await attempt('Stopping traffic', () => api('DELETE', '/api/v1/console/traffic'));
  if (t) showTraffic(t);
}

// ---------------------------------------------------------------- the panel

function switchTab(name) {
  for (const tab of document.querySelectorAll('.tab')) tab.classList.toggle('active', tab.dataset.tab === name);
  $('#panel').hidden = name !== 'panel';
  $('#sagas').hidden = name !== 'sagas';
  clearInterval(state.sagaTimer);
  if (name === 'sagas') {
    refreshSagas();
    state.sagaTimer = setInterval(refreshSagas, 3000);
  }
}

function selectNode(name) {
  const n = state.nodes.get(name);
  if (!n) return;
  state.selected = name;
  for (const other of state.nodes.values()) other.el.classList.toggle('selected', other.name === name);
  switchTab('panel');
  renderPanel(n);
  refreshLive();
  loadTraces(n.name);
  clearInterval(state.tracesTimer);
  state.tracesTimer = setInterval(() => loadTraces(n.name), 5000);
  if (FAULTABLE.has(name)) loadFaults(name);
  if (name === 'payments') loadProvider();
  loadDocs(n);
}

function closePanel() {
  state.selected = '';
  clearInterval(state.tracesTimer);
  for (const n of state.nodes.values()) n.el.classList.remove('selected');
  $('#panel').replaceChildren(h('div', { class: 'empty' },
    h('p', { class: 'empty-title', text: 'Click a service in the diagram' }),
    h('p', { class: 'muted', text: 'to see what it owns, its API, its events, health and latest traces, and to break it on purpose.' })));
}

function renderPanel(n) {
  const sections = [
    h('div', { class: 'section' },
      h('div', { class: 'panel-head' },
        h('h2', { class: 'panel-title', id: 'panel-title', text: n.name }),
        h('span', { class: 'panel-health', id: 'panel-health', text: healthOf(n.name) }),
        h('button', { class: 'btn btn-ghost btn-small panel-close', type: 'button', title: 'Close', onclick: closePanel }, '✕')),
      n.summary && h('p', { id: 'panel-summary', text: n.summary }),
      h('dl', { class: 'facts' },
        h('dt', { text: 'owns' }), h('dd', { id: 'panel-owns', text: n.owns || '—' }),
        h('dt', { text: 'on its own' }), h('dd', { id: 'panel-why', text: n.why || '—' }),
        (n.database || n.kind !== 'broker') && [h('dt', { text: 'database' }), h('dd', { id: 'panel-db', text: n.database || 'none: it keeps no data of its own' })])),
    n.kind === 'broker'
      ? h('div', { class: 'section' },
        h('h3', { text: 'Live' }),
        h('div', { class: 'tiles', id: 'panel-live' },
          tile('published', 'live-published'), tile('delivered', 'live-delivered'), tile('backlog', 'live-backlog'), tile('dead', 'live-dead')),
        h('p', { class: 'sub', text: 'Each publisher\'s breaker on its edge to the broker' }),
        h('ul', { class: 'list', id: 'panel-breakers' }))
      : h('div', { class: 'section' },
        h('h3', { text: 'Live' }),
        h('div', { class: 'tiles', id: 'panel-live' },
          tile('rate', 'live-rate'), tile('errors', 'live-errors'), tile('p50', 'live-p50'), tile('p99', 'live-p99')),
        h('p', { class: 'sub', text: 'Instances (from the registry)' }),
        h('ul', { class: 'list', id: 'panel-instances' }),
        h('p', { class: 'sub', text: 'Breakers on its outgoing edges' }),
        h('ul', { class: 'list', id: 'panel-breakers' })),
  ];
  if (n.kind === 'broker') sections.push(brokerSection());
  else if ((n.publishes || []).length || (n.consumes || []).length) {
    sections.push(h('div', { class: 'section' },
      h('h3', { text: 'Events' }),
      h('p', { class: 'sub', text: 'Publishes' }), topicChips(n.publishes),
      h('p', { class: 'sub', text: 'Consumes' }), topicChips(n.consumes)));
  }
  if (FAULTABLE.has(n.name)) sections.push(chaosSection(n.name));
  sections.push(
    h('div', { class: 'section' },
      h('h3', { text: 'Latest traces' }),
      h('ol', { class: 'traces', id: 'panel-traces' }, h('li', { class: 'muted', text: 'loading…' }))),
  );
  if (n.api) {
    sections.push(h('div', { class: 'section' },
      h('h3', {}, 'API ', h('a', { class: 'muted small', href: n.api, target: '_blank', rel: 'noopener', text: 'YAML' })),
      h('div', { class: 'api-doc', id: 'panel-api' }, h('p', { class: 'muted', text: 'loading…' }))));
  }
  $('#panel').replaceChildren(...sections);
  $('#panel').scrollTop = 0;
}

function tile(label, id) {
  return h('div', { class: 'tile' }, h('div', { class: 't-label', text: label }), h('div', { class: 't-value', id, text: '–' }));
}

function topicChips(topics) {
  if (!topics || !topics.length) return h('p', { class: 'muted small', text: 'none' });
  return h('div', { class: 'topics' }, topics.map((t) => h('span', { class: 'topic-chip', text: t })));
}

function brokerSection() {
  const rows = [];
  const services = (state.stats && state.stats.services) || {};
  for (const [name, st] of Object.entries(services)) {
    if (!num(st.outbox_backlog) && !num(st.queued) && !num(st.dead_letters)) continue;
    rows.push(h('li', {}, h('span', { class: 'grow', text: name }),
      h('span', { class: 'pill pill-warn', text: `outbox ${fmtInt(st.outbox_backlog)}` }),
      h('span', { class: 'pill pill-warn', text: `queued ${fmtInt(st.queued)}` }),
      h('span', { class: `pill ${num(st.dead_letters) ? 'pill-bad' : ''}`, text: `dead ${fmtInt(st.dead_letters)}` })));
  }
  return h('div', { class: 'section' },
    h('h3', { text: 'Queues' }),
    h('p', { class: 'muted small', text: 'Each service writes its events to an outbox in its own database, in the same transaction as its change; a relay publishes them. The broker keeps each consumer group\'s messages (queued) until it settles them, also while the group is down. A message that keeps failing goes to the dead-letter queue.' }),
    rows.length ? h('ul', { class: 'list' }, rows) : h('p', { class: 'muted small', text: 'Every outbox and queue is empty, and no message is dead-lettered.' }));
}

// refreshLive updates the live parts of the open panel from the last stats.
function refreshLive() {
  const name = state.selected;
  const health = healthOf(name);
  const hEl = $('#panel-health');
  if (!hEl) return;
  setText(hEl, health);
  hEl.className = `panel-health ${health}`;
  if (name === 'broker' || !$('#live-rate')) {
    refreshBrokerLive();
    return;
  }
  const st = state.stats && state.stats.services && state.stats.services[name];
  setText('#live-rate', st ? `${fmtRate(st.rate)}/s` : '–');
  setText('#live-errors', st ? fmtPct(st.errors) : '–');
  setText('#live-p50', st ? fmtMs(st.p50_ms) : '–');
  setText('#live-p99', st ? fmtMs(st.p99_ms) : '–');
  $('#live-errors').parentElement.classList.toggle('bad', Boolean(st && num(st.errors) > 0.05));

  const inst = $('#panel-instances');
  const instances = (st && st.instances) || [];
  const instSig = JSON.stringify(instances);
  if (inst.dataset.sig !== instSig) {
    inst.dataset.sig = instSig;
    inst.replaceChildren(...(instances.length
      ? instances.map((i) => h('li', {},
        h('span', { class: `pill ${i.healthy ? 'pill-ok' : 'pill-bad'}`, text: i.healthy ? 'healthy' : 'unhealthy' }),
        h('span', { class: 'grow mono', text: i.address || '', title: i.id || '' })))
      : [h('li', { class: 'muted small', text: st ? 'none listed: the registry has dropped it' : 'no stats yet' })]));
  }

  const br = $('#panel-breakers');
  const breakers = Object.entries((st && st.breakers) || {}).sort();
  const brSig = JSON.stringify(breakers);
  if (br.dataset.sig !== brSig) {
    br.dataset.sig = brSig;
    br.replaceChildren(...(breakers.length
      ? breakers.map(([to, b]) => h('li', {},
        h('span', { class: 'grow', text: `→ ${to}` }),
        h('span', { class: `pill ${b === 'open' ? 'pill-bad' : b === 'half-open' ? 'pill-warn' : 'pill-ok'}`, text: b })))
      : [h('li', { class: 'muted small', text: 'it calls no other service' })]));
  }
  refreshChaos(name);
}

// refreshBrokerLive shows the broker's traffic, measured from the producer
// and consumer spans seen, what waits in the outboxes and the dead letters,
// and the breaker each publisher keeps on its edge to the broker.
function refreshBrokerLive() {
  const services = (state.stats && state.stats.services) || {};
  const totals = brokerTotals(services);
  setText('#live-published', `${fmtRate(perSecond(state.published))}/s`);
  setText('#live-delivered', `${fmtRate(perSecond(state.delivered))}/s`);
  setText('#live-backlog', fmtInt(totals.backlog));
  setText('#live-dead', fmtInt(totals.dead));
  $('#live-dead').parentElement.classList.toggle('bad', totals.dead > 0);
  const br = $('#panel-breakers');
  const rows = Object.entries(services)
    .filter(([, st]) => st.breakers && st.breakers.broker)
    .map(([from, st]) => [from, st.breakers.broker])
    .sort();
  const sig = JSON.stringify(rows);
  if (br.dataset.sig === sig) return;
  br.dataset.sig = sig;
  br.replaceChildren(...(rows.length
    ? rows.map(([from, b]) => h('li', {},
      h('span', { class: 'grow', text: `${from} →` }),
      h('span', { class: `pill ${b === 'open' ? 'pill-bad' : b === 'half-open' ? 'pill-warn' : 'pill-ok'}`, text: b })))
    : [h('li', { class: 'muted small', text: 'no publisher has reported yet' })]));
}

function brokerTotals(services) {
  const broker = state.stats && state.stats.broker;
  if (broker) return { backlog: num(broker.outbox_backlog), queued: num(broker.queued), dead: num(broker.dead_letters) };
  let backlog = 0;
  let queued = 0;
  let dead = 0;
  for (const st of Object.values(services)) {
    backlog += num(st.outbox_backlog);
    queued += num(st.queued);
    dead += num(st.dead_letters);
  }
  return { backlog, queued, dead };
}

// ---------------------------------------------------------------- chaos

function chaosSection(name) {
  const row = (id, ...controls) => h('div', { class: 'chaos-row', id: `chaos-${id}` },
    h('div', { class: 'controls' }, controls),
    h('div'),
    h('div', { class: 'expect', id: `expect-${id}`, text: '' }));
  const rows = [
    row('down',
      h('button', { class: 'btn btn-danger', id: 'fault-down', type: 'button', onclick: () => setFault(name, { down: true }) }, 'Take down'),
      h('button', { class: 'btn btn-good', id: 'fault-up', type: 'button', onclick: () => setFault(name, { down: false }) }, 'Bring back')),
    row('latency',
      h('button', { class: 'btn', id: 'fault-latency', type: 'button', onclick: () => toggleLatency(name) }, 'Add latency'),
      h('input', { type: 'number', id: 'fault-latency-ms', min: 0, max: 30000, step: 50, value: 300, 'aria-label': 'latency in ms' }),
      h('span', { class: 'muted small', text: 'ms' })),
    row('errors',
      h('button', { class: 'btn', id: 'fault-errors', type: 'button', onclick: () => toggleErrors(name) }, 'Add errors'),
      h('input', { type: 'number', id: 'fault-errors-pct', min: 1, max: 100, step: 5, value: 30, 'aria-label': 'error rate in percent' }),
      h('span', { class: 'muted small', text: '%' })),
  ];
  if (name === 'payments') {
    rows.push(row('provider',
      h('button', { class: 'btn btn-danger', id: 'provider-fail', type: 'button', onclick: () => setProvider('fail') }, 'Make payments fail'),
      h('button', { class: 'btn', id: 'provider-timeout', type: 'button', onclick: () => setProvider('timeout') }, 'Make them hang'),
      h('button', { class: 'btn btn-good', id: 'provider-ok', type: 'button', onclick: () => setProvider('ok') }, 'Provider OK')));
  }
  return h('div', { class: 'section' },
    h('h3', { text: 'Break it' }),
    h('div', { class: 'chaos', id: 'panel-chaos' }, rows));
}

// currentFaults is what the instance runs with now: the admin API's last
// answer, or else the stats, or none.
function currentFaults(name) {
  const f = state.faults.get(name);
  if (f) return { latency_ms: num(f.latency_ms), latency_jitter_ms: num(f.latency_jitter_ms), error_rate: num(f.error_rate), down: Boolean(f.down) };
  const st = state.stats && state.stats.services && state.stats.services[name];
  return { latency_ms: num(st && st.latency_ms), latency_jitter_ms: 0, error_rate: num(st && st.error_rate_fault), down: Boolean(st && st.down) };
}

// setFault replaces the service's faults (the API takes the whole set) with
// the current ones changed by change.
async function setFault(name, change) {
  const next = { ...currentFaults(name), ...change };
  const res = await attempt(`Changing ${name}'s faults`, () => api('PUT', `/api/v1/admin/faults/${encodeURIComponent(name)}`, next));
  if (!res) return;
  const item = (res.items || [])[0];
  if (item) state.faults.set(name, item);
  if (res.unreachable && res.unreachable.length) toast(`${res.unreachable.length} instance(s) of ${name} could not be reached`, true);
  refreshChaos(name);
}

function toggleLatency(name) {
  const on = currentFaults(name).latency_ms > 0;
  const ms = Math.round(Number($('#fault-latency-ms').value) || 300);
  setFault(name, on ? { latency_ms: 0, latency_jitter_ms: 0 } : { latency_ms: ms });
}

function toggleErrors(name) {
  const on = currentFaults(name).error_rate > 0;
  const pct = Math.min(100, Math.max(1, Number($('#fault-errors-pct').value) || 30));
  setFault(name, { error_rate: on ? 0 : pct / 100 });
}

async function loadFaults(name) {
  const res = await attempt('Reading the faults', () => api('GET', '/api/v1/admin/faults'));
  if (!res) return;
  for (const item of res.items || []) {
    const svc = item.service;
    if (svc && !state.faults.has(svc)) state.faults.set(svc, item);
    else if (svc === name) state.faults.set(svc, item);
  }
  if (state.selected === name) refreshChaos(name);
}

async function setProvider(mode) {
  const res = await attempt('Switching the card provider', () => api('PUT', '/api/v1/admin/provider', { mode }));
  if (res) {
    state.provider = res;
    refreshChaos('payments');
  }
}

async function loadProvider() {
  const res = await attempt('Reading the card provider', () => api('GET', '/api/v1/admin/provider'));
  if (res) {
    state.provider = res;
    refreshChaos('payments');
  }
}

function refreshChaos(name) {
  if (state.selected !== name || !$('#panel-chaos')) return;
  const f = currentFaults(name);
  const expect = (state.faults.get(name) || {}).expect || {};
  $('#fault-down').disabled = f.down;
  $('#fault-up').disabled = !f.down;
  $('#chaos-down').classList.toggle('active', f.down);
  setText('#expect-down', expect.down || (f.down ? 'down' : 'up: serving, consuming and heartbeating'));
  setText('#fault-latency', f.latency_ms > 0 ? 'Remove latency' : 'Add latency');
  $('#chaos-latency').classList.toggle('active', f.latency_ms > 0);
  setText('#expect-latency', expect.latency || (f.latency_ms > 0 ? `every request waits ${f.latency_ms} ms` : 'no latency added'));
  setText('#fault-errors', f.error_rate > 0 ? 'Remove errors' : 'Add errors');
  $('#chaos-errors').classList.toggle('active', f.error_rate > 0);
  setText('#expect-errors', expect.error_rate || (f.error_rate > 0 ? `about ${Math.round(f.error_rate * 100)}% of requests fail` : 'no errors injected'));
  if (name === 'payments' && $('#chaos-provider')) {
    const mode = (state.provider && state.provider.mode) || 'ok';
    $('#provider-fail').disabled = mode === 'fail';
    $('#provider-timeout').disabled = mode === 'timeout';
    $('#provider-ok').disabled = mode === 'ok';
    $('#chaos-provider').classList.toggle('active', mode !== 'ok');
    setText('#expect-provider', (state.provider && state.provider.expect) || '');
  }
}

// ---------------------------------------------------------------- traces

async function loadTraces(name) {
  let res;
  try {
    res = await api('GET', `/api/v1/console/traces?service=${encodeURIComponent(name)}&limit=8`);
  } catch (err) {
    if (!(err instanceof AuthError) && $('#panel-traces')) $('#panel-traces').replaceChildren(h('li', { class: 'muted small', text: err.message }));
    return;
  }
  const list = $('#panel-traces');
  if (!list || state.selected !== name) return;
  renderTraces(list, res.items || [], 'no traces yet: start traffic');
}

function renderTraces(list, items, emptyText) {
  const sig = JSON.stringify(items.map((t) => t.trace_id));
  if (list.dataset.sig === sig) return;
  list.dataset.sig = sig;
  if (!items.length) {
    list.replaceChildren(h('li', { class: 'muted small', text: emptyText }));
    return;
  }
  list.replaceChildren(...items.map((t) => h('li', {
    class: `trace${t.error ? ' err' : ''}`,
    title: `Replay trace ${t.trace_id} over the diagram`,
    tabindex: 0,
    onclick: () => startReplay(t.trace_id),
    onkeydown: (ev) => { if (ev.key === 'Enter') startReplay(t.trace_id); },
  },
  h('span', { class: 't-root', text: t.root || t.trace_id }),
  h('span', { class: 't-dur', text: fmtMs(t.duration_ms) }),
  h('span', { class: 't-svcs', text: `${(t.services || []).join(' → ')} · ${t.spans} spans · ${ago(t.start)}` }))));
}

// ---------------------------------------------------------------- replay

async function startReplay(traceId) {
  const trace = await attempt('Reading the trace', () => api('GET', `/api/v1/console/traces/${encodeURIComponent(traceId)}`));
  if (!trace) return;
  goView('microservices'); // a trace crosses the services: it is replayed over them
  closeReplay();
  const spans = [...(trace.spans || [])].sort((a, b) => Date.parse(a.start) - Date.parse(b.start));
  if (!spans.length) {
    toast('That trace has no spans left.', true);
    return;
  }
  const t0 = Date.parse(spans[0].start);
  const end = Math.max(...spans.map((sp) => Date.parse(sp.start) - t0 + num(sp.duration_ms)), 1);
  state.replay = { id: traceId, spans, i: -1, playing: true, timer: 0, t0, end };
  for (const f of state.flows) f.el.remove();
  state.flows = [];
  $('.stage').classList.add('replaying');
  $('#replay').hidden = false;
  setText('#replay-trace', shortId(traceId));
  const involved = new Set(spans.flatMap((sp) => [sp.service, sp.peer].filter(Boolean)));
  if (spans.some((sp) => sp.kind === 'producer' || sp.kind === 'consumer')) involved.add('broker');
  for (const n of state.nodes.values()) n.el.classList.toggle('in-trace', involved.has(n.name));
  $('#replay-spans').replaceChildren(...spans.map((sp, i) => waterfallRow(sp, i)));
  replayTo(0);
  schedule();
}

function waterfallRow(sp, i) {
  const r = state.replay;
  const left = ((Date.parse(sp.start) - r.t0) / r.end) * 100;
  const width = Math.max((num(sp.duration_ms) / r.end) * 100, 0.4);
  const bar = h('span', { class: `w-bar${sp.kind === 'producer' || sp.kind === 'consumer' ? ' event' : ''}${sp.status === 'error' ? ' err' : ''}` });
  bar.style.left = `${Math.min(left, 99.5)}%`;
  bar.style.width = `${Math.min(width, 100 - Math.min(left, 99.5))}%`;
  return h('li', { onclick: () => { pauseReplay(); replayTo(i); } },
    h('span', { class: 'w-label', text: spanLabel(sp), title: spanLabel(sp) }),
    h('span', { class: 'w-track' }, bar),
    h('span', { class: 'w-ms', text: fmtMs(sp.duration_ms) }));
}

function spanLabel(sp) {
  const arrow = { client: ` → ${sp.peer}`, producer: ' → broker', consumer: ' ← broker' }[sp.kind] || '';
  return `${sp.service}${arrow} · ${sp.name}`;
}

function replayTo(i) {
  const r = state.replay;
  if (!r || i < 0 || i >= r.spans.length) return;
  r.i = i;
  const sp = r.spans[i];
  setText('#replay-step', `step ${i + 1} / ${r.spans.length}`);
  const status = sp.http_status ? ` · ${sp.http_status}` : '';
  setText('#replay-desc', `${spanLabel(sp)}${sp.topic ? ` · ${sp.topic}` : ''}${status} · ${fmtMs(sp.duration_ms)}${sp.status === 'error' ? ' · error' : ''}`);
  const rows = $('#replay-spans').children;
  for (let k = 0; k < rows.length; k++) {
    rows[k].classList.toggle('current', k === i);
    rows[k].classList.toggle('done', k < i);
  }
  rows[i].scrollIntoView({ block: 'nearest' });
  for (const n of state.nodes.values()) n.el.classList.toggle('current', n.name === sp.service);
  const route = routeOf(sp);
  if (route) {
    route.edge.el.classList.add('replayed');
    drawFlow(route, sp.status === 'error', true, () => { if (route.arrive) pulse(route.arrive, sp.status === 'error'); });
  } else {
    pulse(sp.service, sp.status === 'error');
  }
}

function schedule() {
  const r = state.replay;
  if (!r) return;
  clearTimeout(r.timer);
  setText('#replay-play', r.playing ? 'Pause' : r.i >= r.spans.length - 1 ? 'Again' : 'Play');
  if (!r.playing) return;
  r.timer = setTimeout(() => {
    if (!state.replay) return;
    if (r.i >= r.spans.length - 1) {
      r.playing = false;
      schedule();
      return;
    }
    replayTo(r.i + 1);
    schedule();
  }, REPLAY_STEP_MS);
}

function pauseReplay() {
  if (!state.replay) return;
  state.replay.playing = false;
  schedule();
}

function togglePlay() {
  const r = state.replay;
  if (!r) return;
  if (!r.playing && r.i >= r.spans.length - 1) {
    for (const e of state.edges.values()) e.el.classList.remove('replayed');
    replayTo(0);
  }
  r.playing = !r.playing;
  schedule();
}

function closeReplay() {
  const r = state.replay;
  if (!r) return;
  clearTimeout(r.timer);
  state.replay = null;
  for (const f of state.flows) f.el.remove();
  state.flows = [];
  for (const e of state.edges.values()) e.el.classList.remove('replayed');
  for (const n of state.nodes.values()) n.el.classList.remove('in-trace', 'current');
  $('.stage').classList.remove('replaying');
  $('#replay').hidden = true;
}

// ---------------------------------------------------------------- sagas

async function loadSettings() {
  const st = await api('GET', '/api/v1/admin/settings');
  if (st && st.saga_mode) showSagaMode(st.saga_mode);
}

function showSagaMode(mode) {
  setText('#saga-mode-pill', `saga: ${mode}`);
  const select = $('#saga-mode');
  if (document.activeElement !== select && select.value !== mode) select.value = mode;
  setText('#saga-mode-desc', SAGA_STYLES[mode] || '');
}

async function switchSagaMode() {
  const mode = $('#saga-mode').value;
  const st = await attempt('Switching the saga style', () => api('PUT', '/api/v1/admin/settings', { saga_mode: mode }));
  if (st) {
    showSagaMode(st.saga_mode || mode);
    toast(`New orders now run as ${st.saga_mode || mode} sagas.`);
  }
}

// recentOrders pages the admin listing, which runs oldest first by id (ids
// are time-ordered), from a cursor just before the last orders it showed,
// so each refresh reads only the newest page or two.
async function recentOrders() {
  let after = state.sagaCursor;
  let seen = [];
  for (let pages = 0; pages < 40; pages++) {
    const q = `/api/v1/admin/orders?limit=1000${after ? `&after=${encodeURIComponent(after)}` : ''}`;
    const page = await api('GET', q);
    const items = page.items || [];
    seen = seen.concat(items);
    if (seen.length > ORDERS_SHOWN + 1000) seen = seen.slice(-(ORDERS_SHOWN + 1));
    if (!page.next || !items.length) break;
    after = page.next;
  }
  if (seen.length > ORDERS_SHOWN) {
    state.sagaCursor = seen[seen.length - ORDERS_SHOWN - 1].id;
    seen = seen.slice(-ORDERS_SHOWN);
  }
  return seen.reverse();
}

async function refreshSagas() {
  if ($('#sagas').hidden || !state.token) return;
  const [orders, traces] = await Promise.all([
    recentOrders().catch((err) => err),
    api('GET', '/api/v1/console/traces?service=orders&limit=40').catch((err) => err),
  ]);
  if (orders instanceof Error) {
    if (!(orders instanceof AuthError)) $('#orders').replaceChildren(h('li', { class: 'muted small', text: orders.message }));
  } else {
    renderOrders(orders);
  }
  if (!(traces instanceof Error)) {
    // A checkout is the trace rooted at the order's POST: it reaches past
    // orders (a customer's listing of their orders stops there).
    const checkouts = (traces.items || [])
      .filter((t) => /^(POST )?\/api\/v1\/orders$/.test(t.root || '') && (t.services || []).length > 2)
      .slice(0, 8);
    renderTraces($('#checkout-traces'), checkouts, 'no checkouts traced yet: start traffic');
  }
  setText('#orders-updated', `· updated ${new Date().toLocaleTimeString()}`);
}

function renderOrders(orders) {
  const list = $('#orders');
  if (!orders.length) {
    list.replaceChildren(h('li', { class: 'muted small', text: 'no orders yet: start traffic' }));
    return;
  }
  // An order a person opened stays at the top, open, while newer ones arrive.
  const byId = new Map(orders.map((o) => [o.id, o]));
  for (const [id, o] of state.sagaPinned) if (byId.has(id)) state.sagaPinned.set(id, { ...o, ...byId.get(id) });
  const rest = orders.filter((o) => !state.sagaPinned.has(o.id));
  list.replaceChildren(...[...state.sagaPinned.values()].map((o) => orderItem(o, true)), ...rest.map((o) => orderItem(o, false)));
}

function statusPill(status) {
  const cls = { COMPLETED: 'pill-ok', CANCELLED: 'pill-bad' }[status] || 'pill-warn';
  return h('span', { class: `pill ${cls}`, text: status });
}

function orderItem(o, open) {
  const d = h('details', { class: 'order', dataset: { id: o.id }, open },
    h('summary', {},
      statusPill(o.status),
      h('span', { class: 'o-id', text: `order …${shortId(o.id)}`, title: o.id }),
      h('span', { class: 'o-total', text: fmtMoney(o.total_cents, o.currency || 'USD') }),
      h('span', { class: 'o-meta', text: `${o.saga} · ${ago(o.created_at)}${o.cancel_reason ? ` · ${o.cancel_reason}` : ''}` })),
    h('ol', { class: 'timeline' }, h('li', { class: 'muted small', text: 'loading the saga…' })));
  d.addEventListener('toggle', () => {
    if (d.open) {
      state.sagaPinned.set(o.id, o);
      loadSaga(d, o);
    } else {
      state.sagaPinned.delete(o.id);
    }
  });
  return d;
}

async function loadSaga(d, o) {
  let saga = state.sagaCache.get(o.id);
  if (!saga || saga.status !== o.status || !['COMPLETED', 'CANCELLED'].includes(saga.status)) {
    try {
      saga = await api('GET', `/api/v1/orders/${encodeURIComponent(o.id)}/saga`);
    } catch (err) {
      if (!(err instanceof AuthError)) d.querySelector('.timeline').replaceChildren(h('li', { class: 'muted small', text: err.message }));
      return;
    }
    state.sagaCache.set(o.id, saga);
    if (state.sagaCache.size > 200) state.sagaCache.delete(state.sagaCache.keys().next().value);
  }
  d.querySelector('.timeline').replaceChildren(...timeline(saga));
  if (saga.status && saga.status !== o.status) {
    // A pinned order may have left the listing's window: its saga says how it ended.
    o.status = saga.status;
    d.querySelector('summary .pill').replaceWith(statusPill(saga.status));
  }
}

const COMPENSATION = /refund|release|unship|cancel/i;

function timeline(saga) {
  const steps = saga.steps || [];
  if (!steps.length) return [h('li', { class: 'muted small', text: `no steps recorded (${saga.saga})` })];
  const t0 = Date.parse(steps[0].at);
  return steps.map((st) => {
    const comp = COMPENSATION.test(st.step);
    // An orchestrated step says how it went in its result; an event-driven
    // saga records the events it saw, whose names say it (PaymentFailed).
    const bad = /refused|failed/.test(st.result || '') || /Failed$/.test(st.step);
    const cls = comp ? 'comp' : bad ? 'bad' : /ok|seen/.test(st.result || '') ? 'ok' : '';
    const offset = Date.parse(st.at) - t0;
    return h('li', { class: cls },
      h('span', {}, h('span', { class: 's-name', text: st.step }), ` ${st.result || ''}`, comp && h('span', { class: 'comp-mark', text: '↩ compensation' })),
      h('span', { class: 's-at', text: Number.isFinite(offset) ? `+${fmtMs(offset)}` : '' }),
      st.detail && h('span', { class: 's-detail', text: st.detail }));
  });
}

// ---------------------------------------------------------------- API documents

// loadDocs fetches the service's OpenAPI document through the gateway, once,
// and lists its paths and operations. A service that is down cannot serve
// its document, so it is not asked.
async function loadDocs(n) {
  if (!n.api) return;
  const box = () => (state.selected === n.name ? $('#panel-api') : null);
  let doc = state.docs.get(n.name);
  if (!doc) {
    if (healthOf(n.name) === 'down') {
      if (box()) box().replaceChildren(h('p', { class: 'muted small', text: `${n.name} serves its own document, and it is down.` }));
      return;
    }
    try {
      const res = await fetch(n.api, { headers: { Authorization: `Bearer ${state.token}` }, cache: 'no-store' });
      if (!res.ok) throw new Error(`the document answered ${res.status}`);
      doc = parseOpenAPI(await res.text());
      state.docs.set(n.name, doc);
    } catch (err) {
      if (box()) box().replaceChildren(h('p', { class: 'muted small', text: err.message }));
      return;
    }
  }
  if (!box()) return;
  const head = h('p', { class: 'muted small', text: `${doc.title || n.name} ${doc.version ? `v${doc.version}` : ''} · ${doc.paths.length} paths` });
  box().replaceChildren(head, ...doc.paths.map((p) => h('details', {},
    h('summary', {}, h('span', { text: p.path }),
      h('span', { class: 'methods' }, p.ops.map((op) => h('span', { class: `method m-${op.method.toLowerCase()}`, text: op.method })))),
    h('div', { class: 'ops' }, p.ops.map((op) => h('div', { class: 'op' },
      h('span', { class: `method m-${op.method.toLowerCase()}`, text: op.method }),
      h('span', { text: op.summary || op.operationId || '' }),
      op.responses.length && h('span', { class: 'codes', text: op.responses.join(' · ') })))))));
}

// parseOpenAPI reads what the panel shows of an OpenAPI document (its
// title, version, and each path's operations with their summary and
// response codes) from the block structure of its YAML. It is not a YAML
// parser; it needs no more than the documents the services publish.
export function parseOpenAPI(text) {
  const doc = { title: '', version: '', paths: [] };
  let section = '';
  let pathIndent = -1;
  let opIndent = -1;
  let fieldIndent = -1;
  let respIndent = -1;
  let cur = null;
  let op = null;
  let inResponses = false;
  let folded = null; // {op, field, indent} while reading a block scalar
  for (const raw of text.split(/\r?\n/)) {
    const trimmed = raw.trim();
    if (!trimmed || trimmed.startsWith('#')) continue;
    const indent = raw.length - raw.trimStart().length;
    if (folded) {
      if (indent > folded.indent) {
        folded.op[folded.field] = `${folded.op[folded.field]} ${trimmed}`.trim();
        continue;
      }
      folded = null;
    }
    if (indent === 0) {
      section = trimmed.replace(/:.*$/, '');
      cur = op = null;
      pathIndent = -1;
      continue;
    }
    if (section === 'info') {
      const m = trimmed.match(/^(title|version):\s*(.*)$/);
      if (m && indent <= 2) doc[m[1]] = unquote(m[2]);
      continue;
    }
    if (section !== 'paths') continue;
    if (pathIndent < 0) pathIndent = indent;
    if (indent === pathIndent) {
      const m = trimmed.match(/^['"]?(\/[^'"]*?)['"]?:\s*$/);
      cur = m ? { path: m[1], ops: [] } : null;
      if (cur) doc.paths.push(cur);
      op = null;
      opIndent = -1;
      continue;
    }
    if (!cur) continue;
    if (opIndent < 0) opIndent = indent;
    if (indent === opIndent) {
      const m = trimmed.match(/^(get|put|post|delete|patch|head|options):/);
      op = m ? { method: m[1].toUpperCase(), summary: '', operationId: '', responses: [] } : null;
      if (op) cur.ops.push(op);
      fieldIndent = -1;
      inResponses = false;
      continue;
    }
    if (!op || indent < opIndent) continue;
    if (fieldIndent < 0) fieldIndent = indent;
    if (indent === fieldIndent) {
      inResponses = trimmed.startsWith('responses:');
      respIndent = -1;
      const m = trimmed.match(/^(summary|operationId):\s*(.*)$/);
      if (m) {
        const v = m[2].trim();
        if (/^[>|][-+]?$/.test(v)) {
          op[m[1]] = '';
          folded = { op, field: m[1], indent };
        } else {
          op[m[1]] = unquote(v);
        }
      }
      continue;
    }
    if (inResponses && indent > fieldIndent) {
      if (respIndent < 0) respIndent = indent;
      const m = indent === respIndent && trimmed.match(/^['"]?(\d{3}|default)['"]?\s*:/);
      if (m) op.responses.push(m[1]);
    }
  }
  return doc;
}

function unquote(v) {
  v = v.trim();
  if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) return v.slice(1, -1);
  return v;
}

// ---------------------------------------------------------------- views

const VIEWS = ['monolith', 'migration', 'microservices'];

function viewFromHash() {
  const v = location.hash.replace(/^#/, '');
  return VIEWS.includes(v) ? v : 'microservices';
}

// goView is a person choosing a view: it becomes a step in the history, so
// Back returns to the view before.
function goView(name) {
  if (name === state.view && location.hash === `#${name}`) return;
  history.pushState(null, '', `#${name}`);
  showView(name);
}

// showView shows one view: the Monolith and the Microservices each draw the
// diagram their own way; the Migration hides it for the facade's table.
function showView(name) {
  if (!VIEWS.includes(name)) name = 'microservices';
  state.view = name;
  for (const tab of document.querySelectorAll('.view-tab')) {
    const on = tab.dataset.view === name;
    tab.classList.toggle('active', on);
    tab.setAttribute('aria-selected', String(on));
  }
  if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
  if (name !== 'microservices') closeReplay();
  // Shown before it is drawn: a hidden SVG cannot measure its paths.
  $('#diagram').toggleAttribute('hidden', name === 'migration');
  $('#facade-view').hidden = name !== 'migration';
  $('.legend').hidden = name !== 'microservices';
  $('#monolith-notes').hidden = name !== 'monolith';
  if (state.topology && name !== 'migration' && state.drawn !== name) {
    if (name === 'monolith') drawMonolith();
    else drawDiagram(state.topology);
    state.drawn = name;
    for (const n of state.nodes.values()) n.el.classList.toggle('selected', n.name === state.selected);
  }
  renderFacade();
  applyMonolith();
  pollView();
}

// pollView asks, every second while the view shows them, what the Monolith
// and the Migration need: the facade's routes (also to know which routes the
// monolith still serves) and, every other second, the monolith's figures.
function pollView() {
  clearInterval(state.viewTimer);
  state.viewTicks = 0;
  if (state.view === 'microservices' || !state.token) return;
  const tick = () => {
    refreshFacade();
    if (state.view === 'monolith' && state.viewTicks % 2 === 0) refreshLegacy();
    state.viewTicks++;
  };
  tick();
  state.viewTimer = setInterval(tick, 1000);
}

// ---------------------------------------------------------------- monolith

// The monolith's routes, the module of it that serves each, the table it
// keeps, and the service that takes the route over.
const LEGACY_ROUTES = [
  { route: '/profile', module: 'customers', table: 'customers', service: 'users' },
  { route: '/orders', module: 'orders', table: 'orders', service: 'orders' },
];
const MONOLITH = { x: 410, y: 320, w: 420, h: 372 };
const MONO_DB = { cx: 816, top: 196, w: 236, h: 232, ry: 16 };

// legacyInfo is what the panel says of the monolith: the topology's node
// when it lists one.
function legacyInfo() {
  const node = ((state.topology && state.topology.nodes) || []).find((n) => n.name === 'legacy');
  return node || {
    name: 'legacy',
    kind: 'legacy',
    summary: 'The old monolith: one application serving customers and their orders.',
    owns: 'customers and orders, in one database',
    why: 'It is not on its own: it is the shop before the services, kept running while the facade moves its routes out.',
    database: 'legacy.db',
  };
}

// drawMonolith draws the legacy app alone, as the shop was before it was
// split: its modules in one box, and the one database they all share.
function drawMonolith() {
  const svg = $('#diagram');
  svg.replaceChildren();
  state.nodes.clear();
  state.edges.clear();
  state.topics.clear();
  state.flows = [];
  svg.append(s('defs', {}, marker('arrow-http', 'var(--http)'), marker('arrow-open', 'var(--bad)')));
  const edgeLayer = s('g', { id: 'edges' });
  const nodeLayer = s('g', { id: 'nodes' });
  svg.append(edgeLayer, nodeLayer, s('g', { id: 'flows' }));

  const n = { ...legacyInfo(), name: 'legacy', kind: 'legacy', ...MONOLITH };
  state.nodes.set('legacy', n);
  nodeLayer.append(s('g', { class: 'clients', id: 'clients' },
    s('circle', { class: 'person', cx: CLIENTS_X, cy: n.y - 16, r: 7 }),
    s('path', { class: 'person', d: `M${CLIENTS_X - 13} ${n.y + 8} q13 -18 26 0` }),
    s('text', { x: CLIENTS_X, y: n.y + 28, 'text-anchor': 'middle' }, 'clients')));
  addEdge(edgeLayer, { from: 'clients', to: 'legacy', kind: 'http' });
  nodeLayer.append(drawMonolithDb(n), drawMonolithNode(n));
  if (state.stats) applyStats(state.stats);
  applyMonolith();
}

function drawMonolithNode(n) {
  const left = n.x - n.w / 2;
  const top = n.y - n.h / 2;
  const g = s('g', { id: 'node-legacy', class: 'node legacy monolith unknown', tabindex: 0, role: 'button', 'aria-label': 'legacy: details' });
  g.append(
    s('rect', { class: 'ring', x: left - 4, y: top - 4, width: n.w + 8, height: n.h + 8, rx: 17 }),
    s('rect', { class: 'box', x: left, y: top, width: n.w, height: n.h, rx: 14 }),
    s('circle', { class: 'health', cx: left + 18, cy: top + 24, r: 5 }),
    s('text', { class: 'name', x: left + 32, y: top + 29 }, 'legacy'),
    s('text', { class: 'kind', x: left + n.w - 16, y: top + 29, 'text-anchor': 'end' }, 'one deployable'),
    s('text', { class: 'mono-sub', x: left + 18, y: top + 52 }, 'one program in one process: every route, every module'),
  );
  const ml = left + 18;
  const mw = n.w - 36;
  const mh = 96;
  LEGACY_ROUTES.forEach((r, i) => {
    const my = top + 70 + i * 128;
    g.append(s('g', { class: 'module', dataset: { route: r.route } },
      s('rect', { class: 'module-box', x: ml, y: my, width: mw, height: mh, rx: 9 }),
      s('text', { class: 'module-name', x: ml + 14, y: my + 25 }, `${r.module} module`),
      s('text', { class: 'module-route', x: ml + mw - 14, y: my + 25, 'text-anchor': 'end' }, r.route),
      s('text', { class: 'module-state', x: ml + 14, y: my + 52 }, '…'),
      s('text', { class: 'module-note', x: ml + 14, y: my + 74 }, `reads and writes ${r.table}, and joins the other tables`)));
  });
  // Between the modules: a function call, inside one transaction.
  const gapTop = top + 70 + mh;
  const gapBottom = top + 70 + 128;
  g.append(
    s('line', { class: 'call', x1: ml + 40, y1: gapTop + 3, x2: ml + 40, y2: gapBottom - 3 }),
    s('text', { class: 'call-label', x: ml + 52, y: (gapTop + gapBottom) / 2 + 4 }, 'a function call, in the same transaction'),
  );
  // What the modules share, and so cannot change alone.
  const shared = ['one build', 'one deploy', 'one schema', 'one scale'];
  const pw = (mw - 3 * 8) / shared.length;
  const py = top + 70 + 128 + mh + 16;
  shared.forEach((label, i) => {
    const x = ml + i * (pw + 8);
    g.append(
      s('rect', { class: 'mono-pill', x, y: py, width: pw, height: 22, rx: 11 }),
      s('text', { class: 'mono-pill-text', x: x + pw / 2, y: py + 15, 'text-anchor': 'middle' }, label));
  });
  g.append(s('text', { class: 'meta', x: left + 18, y: top + n.h - 14 }, kindLabel('legacy')));
  g.append(s('g', { class: 'badges' }));
  n.el = g;
  n.meta = g.querySelector('.meta');
  n.badges = g.querySelector('.badges');
  n.ring = g.querySelector('.ring');
  g.addEventListener('click', () => selectNode('legacy'));
  g.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' || ev.key === ' ') {
      ev.preventDefault();
      selectNode('legacy');
    }
  });
  return g;
}

// drawMonolithDb draws the one database, with a row per table and the
// module that writes it tied to it: every module reaches into the same store.
function drawMonolithDb(n) {
  const { cx, top, w, h: height, ry } = MONO_DB;
  const rx = w / 2;
  const label = String(n.database || 'legacy.db').replace(/\s*\(.*\)$/, '');
  const g = s('g', { class: 'db monolith-db', id: 'db-legacy' },
    s('title', {}, `legacy's one database, shared by every module: ${n.database || 'legacy.db'}`),
    s('path', { class: 'cyl', d: `M${cx - rx} ${top} v${height} a${rx} ${ry} 0 0 0 ${w} 0 v${-height}` }),
    s('ellipse', { class: 'cyl-top', cx, cy: top, rx, ry }),
    s('text', { class: 'mono-db-name', x: cx, y: top + ry + 24, 'text-anchor': 'middle' }, label));
  const boxRight = n.x + n.w / 2;
  LEGACY_ROUTES.forEach((r, i) => {
    const y = top + 64 + i * 66;
    const x = cx - rx + 14;
    const rw = w - 28;
    // The module's tie to its table, and the other module's join into it.
    const moduleY = n.y - n.h / 2 + 70 + i * 128 + 48;
    g.append(
      s('line', { class: 'tie', x1: boxRight - 18, y1: moduleY, x2: x, y2: y + 22 }),
      s('line', { class: 'tie join', x1: boxRight - 18, y1: n.y - n.h / 2 + 70 + (1 - i) * 128 + 48, x2: x, y2: y + 30 }),
      s('rect', { class: 'table-row', dataset: { table: r.table }, x, y, width: rw, height: 50, rx: 7 }),
      s('text', { class: 'table-name', x: x + 12, y: y + 21 }, r.table),
      s('text', { class: 'table-count', id: `legacy-${r.table}`, x: x + rw - 12, y: y + 21, 'text-anchor': 'end' }, '…'),
      s('text', { class: 'table-note', id: `legacy-${r.table}-note`, x: x + 12, y: y + 39 }, ''));
  });
  g.append(
    s('text', { class: 'mono-caption', x: cx, y: top + height + ry + 22, 'text-anchor': 'middle' }, 'one database, shared by every module'),
    s('text', { class: 'mono-caption faint', id: 'legacy-handovers', x: cx, y: top + height + ry + 42, 'text-anchor': 'middle' }, ''),
    s('text', { class: 'mono-caption bad', id: 'legacy-error', x: cx, y: top + height + ry + 62, 'text-anchor': 'middle' }, ''));
  return g;
}

// legacyMoved says whether a route of the monolith has moved to its
// service: the facade says so, or else the monolith's own record of its
// handovers; undefined while neither has answered.
function legacyMoved(r) {
  const f = state.facade.routes.find((x) => x.route === r.route);
  if (f) return f.target === f.service;
  const st = state.legacy.stats;
  if (st) return (st.handovers || []).some((hd) => hd.service === r.service);
  return undefined;
}

// applyMonolith shows, on the Monolith's picture, which routes it still
// serves and the figures of its database.
function applyMonolith() {
  if (state.drawn !== 'monolith' || !$('#node-legacy')) return;
  const st = state.legacy.stats;
  for (const r of LEGACY_ROUTES) {
    const moved = legacyMoved(r);
    const mod = $(`#node-legacy .module[data-route="${r.route}"]`);
    mod.classList.toggle('moved', moved === true);
    mod.classList.toggle('served', moved === false);
    setText(mod.querySelector('.module-state'), moved === undefined ? 'asking the facade…'
      : moved ? `moved to ${r.service}: the facade sends ${r.route} there` : `served here: the facade sends ${r.route} to it`);
    setText(`#legacy-${r.table}`, st ? fmtInt(st[r.table]) : '–');
    setText(`#legacy-${r.table}-note`, moved ? `handed over to ${r.service}; read-only here` : `written by the ${r.module} module`);
    $(`#db-legacy .table-row[data-table="${r.table}"]`).classList.toggle('moved', moved === true);
  }
  const handovers = (st && st.handovers) || [];
  setText('#legacy-handovers', !st ? '' : handovers.length
    ? `handed over: ${handovers.map((hd) => `${hd.domain} → ${hd.service}${hd.handed_at ? ` (${ago(hd.handed_at)})` : ''}`).join(', ')}`
    : 'nothing handed over yet');
  setText('#legacy-error', state.legacy.error ? `legacy is not answering: ${state.legacy.error}` : '');
}

async function refreshLegacy() {
  const l = state.legacy;
  if (l.inflight || !state.token) return;
  l.inflight = true;
  try {
    l.stats = await api('GET', '/api/v1/console/legacy');
    l.error = '';
  } catch (err) {
    if (err instanceof AuthError) return;
    l.stats = null;
    l.error = err.message;
  } finally {
    l.inflight = false;
  }
  applyMonolith();
}

// ---------------------------------------------------------------- migration

// The traffic split is measured over this long: the facade counts requests
// since the gateway started, and the page takes the difference.
const SPLIT_WINDOW_MS = 10000;

async function refreshFacade() {
  const f = state.facade;
  if (f.inflight || !state.token) return;
  f.inflight = true;
  const asked = ++f.asked;
  try {
    const res = await api('GET', '/api/v1/admin/facade');
    // An answer to a question asked before a move finished is older than
    // what the move answered.
    if (asked < f.fresh) return;
    f.routes = (res && res.routes) || [];
    f.error = '';
    sampleFacade(f.routes);
  } catch (err) {
    if (err instanceof AuthError) return;
    f.error = err.message;
  } finally {
    f.inflight = false;
  }
  renderFacade();
  applyMonolith();
}

// sampleFacade keeps, per route, the request counts of the last window of
// polls, and the newest one before it as the window's start.
function sampleFacade(routes) {
  const now = performance.now();
  for (const r of routes) {
    const req = r.requests || {};
    const sample = { t: now, legacy: num(req.legacy), service: num(req[r.service]) };
    let list = state.facade.samples.get(r.route) || [];
    const last = list[list.length - 1];
    // Counts that went down: the gateway restarted, and counts from zero.
    if (last && (sample.legacy < last.legacy || sample.service < last.service)) list = [];
    list.push(sample);
    while (list.length > 2 && now - list[1].t >= SPLIT_WINDOW_MS) list.shift();
    state.facade.samples.set(r.route, list);
  }
}

// facadeSplit is where a route's requests went over the window: null until
// two polls have been seen.
function facadeSplit(route) {
  const list = state.facade.samples.get(route) || [];
  if (list.length < 2) return null;
  const a = list[0];
  const b = list[list.length - 1];
  const legacy = b.legacy - a.legacy;
  const service = b.service - a.service;
  return { legacy, service, total: legacy + service, secs: Math.max((b.t - a.t) / 1000, 0.001) };
}

function renderFacade() {
  const f = state.facade;
  const body = $('#facade-rows');
  setText('#facade-error', f.error && f.routes.length ? `Not up to date: ${f.error}` : '');
  if (!f.routes.length) {
    const text = f.error ? `The facade is not answering: ${f.error}` : 'asking the facade…';
    if (body.textContent !== text) body.replaceChildren(h('tr', { class: 'facade-empty' }, h('td', { colspan: 5, class: 'muted', text })));
    return;
  }
  drawFacadeDiagram(f.routes);
  updateFacadeDiagram(f.routes);
  // The rows stay and change in place: a button replaced under the mouse
  // would lose its click.
  const empty = body.querySelector('.facade-empty');
  if (empty) empty.remove();
  for (const r of f.routes) {
    let tr = [...body.rows].find((row) => row.dataset.route === r.route);
    if (!tr) {
      tr = facadeRow(r);
      body.append(tr);
    }
    updateFacadeRow(tr, r);
  }
}

// The facade's picture: the clients, the gateway as the facade, and where
// each old route goes, the monolith or its service, drawn as thick as its
// share of the route's traffic.
const FACADE_PIC = { clientsX: 40, facade: { x: 250, w: 190, h: 70 }, dest: { x: 740, w: 200, h: 40 }, y: 107 };

// drawFacadeDiagram draws the picture for routes, once per set of routes;
// updateFacadeDiagram moves the traffic on it.
function drawFacadeDiagram(routes) {
  const svg = $('#facade-diagram');
  const sig = JSON.stringify(routes.map((r) => [r.route, r.service]));
  if (svg.dataset.sig === sig) return;
  svg.dataset.sig = sig;
  const { clientsX, facade, dest, y } = FACADE_PIC;
  const services = [...new Set(routes.map((r) => r.service))];
  const names = ['legacy', ...services];
  const step = (214 - 20 - dest.h) / Math.max(names.length - 1, 1);
  const destY = new Map(names.map((name, i) => [name, 10 + dest.h / 2 + i * step]));
  const box = (cls, cx, cy, w, hgt, title, sub) => s('g', { class: `fd-box ${cls}` },
    s('rect', { x: cx - w / 2, y: cy - hgt / 2, width: w, height: hgt, rx: 9 }),
    s('text', { class: 'fd-name', x: cx - w / 2 + 14, y: cy + (sub ? -4 : 5) }, title),
    sub && s('text', { class: 'fd-sub', x: cx - w / 2 + 14, y: cy + 13 }, sub));
  const lines = s('g', {});
  const labels = s('g', {}); // above every line, to stay readable
  const right = facade.x + facade.w / 2;
  const left = dest.x - dest.w / 2 - 3;
  routes.forEach((r, i) => {
    const sy = y - 15 * (routes.length - 1) + i * 30;
    for (const target of ['legacy', r.service]) {
      const ty = destY.get(target) + (target === 'legacy' ? (i - (routes.length - 1) / 2) * 8 : 0);
      const mid = (right + left) / 2;
      lines.append(s('path', {
        class: `fd-route ${target === 'legacy' ? 'to-legacy' : 'to-service'}`,
        dataset: { route: r.route, target },
        d: `M${right} ${sy} C${mid} ${sy}, ${mid} ${ty}, ${left} ${ty}`,
      }));
    }
    labels.append(s('text', { class: 'fd-label', x: right + 10, y: sy - 7 }, r.route));
  });
  svg.replaceChildren(
    s('defs', {}, marker('fd-arrow', 'var(--http)')),
    s('g', { class: 'clients' },
      s('circle', { class: 'person', cx: clientsX, cy: y - 16, r: 7 }),
      s('path', { class: 'person', d: `M${clientsX - 13} ${y + 8} q13 -18 26 0` }),
      s('text', { x: clientsX, y: y + 28, 'text-anchor': 'middle' }, 'clients')),
    s('path', { class: 'fd-in', d: `M${clientsX + 18} ${y} L${facade.x - facade.w / 2 - 3} ${y}`, 'marker-end': 'url(#fd-arrow)' }),
    lines,
    labels,
    box('fd-facade', facade.x, y, facade.w, facade.h, 'gateway', 'the strangler-fig facade'),
    ...names.map((name) => box(name === 'legacy' ? 'fd-legacy' : 'fd-service', dest.x, destY.get(name), dest.w, dest.h,
      name, name === 'legacy' ? 'the monolith' : 'the new owner')));
}

function updateFacadeDiagram(routes) {
  const svg = $('#facade-diagram');
  for (const r of routes) {
    const sp = facadeSplit(r.route);
    const share = { legacy: 0, [r.service]: 0 };
    if (sp && sp.total) {
      share.legacy = sp.legacy / sp.total;
      share[r.service] = sp.service / sp.total;
    }
    for (const path of svg.querySelectorAll('path.fd-route')) {
      if (path.dataset.route !== r.route) continue;
      const target = path.dataset.target;
      path.classList.toggle('current', r.target === target);
      path.classList.toggle('flowing', share[target] > 0);
      path.style.strokeWidth = `${(1.4 + 6 * share[target]).toFixed(1)}px`;
    }
  }
}

function facadeRow(r) {
  return h('tr', { dataset: { route: r.route } },
    h('td', { class: 'f-route' }, h('code', { text: r.route })),
    h('td', { class: 'f-dest' },
      h('span', { class: 'dest dest-legacy', text: 'legacy' }),
      h('span', { class: 'dest-arrow', text: '→' }),
      h('span', { class: 'dest dest-service', text: r.service })),
    h('td', { class: 'f-split' },
      h('div', { class: 'split' }, h('span', { class: 'split-legacy' }), h('span', { class: 'split-service' })),
      h('div', { class: 'split-label' })),
    h('td', { class: 'f-copied num' }),
    h('td', { class: 'f-move' },
      h('span', { class: 'moved-to' }),
      h('div', { class: 'f-outcome' })));
}

function updateFacadeRow(tr, r) {
  const f = state.facade;
  const moved = r.target === r.service;
  const moving = !moved && (f.pending.has(r.route) || Boolean(r.moving));
  tr.dataset.target = r.target;
  tr.classList.toggle('moved', moved);
  tr.classList.toggle('moving', moving);
  tr.querySelector('.dest-legacy').classList.toggle('current', r.target === 'legacy');
  tr.querySelector('.dest-service').classList.toggle('current', moved);

  const sp = facadeSplit(r.route);
  const req = r.requests || {};
  const bar = tr.querySelector('.split');
  const share = sp && sp.total ? sp.legacy / sp.total : 0;
  bar.classList.toggle('idle', !sp || !sp.total);
  tr.querySelector('.split-legacy').style.width = `${sp && sp.total ? share * 100 : 0}%`;
  tr.querySelector('.split-service').style.width = `${sp && sp.total ? (1 - share) * 100 : 0}%`;
  bar.title = `since the gateway started: legacy ${fmtInt(req.legacy)}, ${r.service} ${fmtInt(req[r.service])}`;
  setText(tr.querySelector('.split-label'), !sp ? 'measuring…'
    : !sp.total ? `no requests in the last ${Math.round(sp.secs)} s`
      : `legacy ${Math.round(share * 100)}% · ${r.service} ${Math.round((1 - share) * 100)}% · ${fmtRate(sp.total / sp.secs)}/s`);

  setText(tr.querySelector('.f-copied'), moved || num(r.copied) ? fmtInt(r.copied) : '—');

  const cell = tr.querySelector('.f-move');
  let button = cell.querySelector('button.move');
  if (moved) {
    // A move is one way: no button takes it back.
    if (button) button.remove();
  } else if (!button) {
    button = h('button', { class: 'btn btn-primary btn-small move', type: 'button', onclick: () => moveRoute(r.route, r.service) });
    cell.prepend(button);
  }
  if (button && !moved) {
    button.disabled = moving;
    setText(button, moving ? 'moving…' : `Move to ${r.service}`);
  }
  setText(cell.querySelector('.moved-to'), moved ? `moved to ${r.service}` : '');
  const failed = f.failed.get(r.route);
  const outcome = cell.querySelector('.f-outcome');
  let text = 'copies its data, then switches';
  let cls = 'muted';
  if (moved) {
    text = `${r.moved_at ? `${ago(r.moved_at)} · ` : ''}${r.service} owns its data now`;
  } else if (moving) {
    text = 'copying, then switching: requests wait a moment, none is dropped';
  } else if (failed || r.error) {
    text = `The move failed: ${failed || r.error}. The route stays on legacy.`;
    cls = 'bad';
  }
  outcome.className = `f-outcome ${cls}`;
  setText(outcome, text);
}

// moveRoute asks the facade to move a route to its service, and shows how
// it went: the answer comes once the data is copied and the route switched.
async function moveRoute(route, service) {
  const f = state.facade;
  if (f.pending.has(route)) return;
  f.pending.add(route);
  f.failed.delete(route);
  renderFacade();
  try {
    const moved = await api('PUT', '/api/v1/admin/facade/routes', { route, target: service });
    f.fresh = f.asked + 1;
    const i = f.routes.findIndex((r) => r.route === route);
    if (moved && i >= 0) f.routes[i] = { ...f.routes[i], ...moved };
    toast(`${route} moved to ${service}: ${fmtInt(moved && moved.copied)} records copied, and ${service} owns them now.`);
  } catch (err) {
    if (!(err instanceof AuthError)) f.failed.set(route, err.message);
  } finally {
    f.pending.delete(route);
    renderFacade();
    applyMonolith();
  }
}

// ---------------------------------------------------------------- start

function wire() {
  $('#signin-form').addEventListener('submit', signIn);
  $('#signout').addEventListener('click', () => signOut('Signed out.'));
  $('#traffic-start').addEventListener('click', startTraffic);
  $('#traffic-stop').addEventListener('click', stopTraffic);
  $('#traffic-rate').addEventListener('keydown', (ev) => { if (ev.key === 'Enter') startTraffic(); });
  $('#saga-mode').addEventListener('change', switchSagaMode);
  $('#saga-mode-pill').addEventListener('click', () => switchTab('sagas'));
  for (const tab of document.querySelectorAll('.tab')) tab.addEventListener('click', () => switchTab(tab.dataset.tab));
  for (const tab of document.querySelectorAll('.view-tab')) tab.addEventListener('click', () => goView(tab.dataset.view));
  // Back, forward, or a hash typed in: the hash names the view.
  window.addEventListener('hashchange', () => { if (state.topology) showView(viewFromHash()); });
  $('#replay-prev').addEventListener('click', () => { pauseReplay(); if (state.replay) replayTo(state.replay.i - 1); });
  $('#replay-next').addEventListener('click', () => { pauseReplay(); if (state.replay) replayTo(state.replay.i + 1); });
  $('#replay-play').addEventListener('click', togglePlay);
  $('#replay-close').addEventListener('click', closeReplay);
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && state.replay) closeReplay();
  });
  setInterval(showFlowRate, 1000);
}

wire();
if (state.token) enter();
else showSignIn();

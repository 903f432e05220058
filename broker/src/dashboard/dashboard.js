// crier broker dashboard: polls `stats` and `stats/top` (relative to <base href>, so it works under
// any broker path), draws the rates by hand in SVG, and tails events through the browser bundle
// (`crier.min.js`, global `Crier`). Plain JS, no framework, nothing loaded from elsewhere.

const STATS_EVERY_MS = 1000;
const TOP_EVERY_MS = 2000;
const TOP_LIMIT = 8;
const WINDOW_S = 300; // the chart's time span, at most
const MIN_SPAN_S = 20;
const TAIL_MAX = 200;
const PAYLOAD_PREVIEW = 240; // characters of a payload shown in the tail

const $ = (id) => document.getElementById(id);
const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.getAttribute('content') ?? '';
const SVG = 'http://www.w3.org/2000/svg'; // the SVG namespace name, not a URL anything loads

const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${meta('crier-path') || '/'}`;

// With credentials configured, the broker's data is for admins: the page asks for a token on a
// 401/403 and keeps it for this tab only (sessionStorage), for its requests and its stream.
const TOKEN_KEY = 'crier.dashboard.token';
let token = sessionStorage.getItem(TOKEN_KEY) ?? undefined;
const authHeaders = () => (token ? { Authorization: `Bearer ${token}` } : {});

/** Shows the token form, saying why (no credential yet, or one that was refused). */
function askForToken(status) {
  setText('token-why', token === undefined
    ? 'This broker needs an admin credential to show its data.'
    : `The credential was refused (${status === 403 ? 'not an admin' : 'unauthorized'}): give another one.`);
  $('token-form').hidden = false;
}
const hasBundle = meta('crier-bundle') !== 'missing' && typeof globalThis.Crier === 'object';

// ---- formatting ----------------------------------------------------------------------------

const grouped = new Intl.NumberFormat('en-US');
function fmtRate(x) {
  if (!Number.isFinite(x)) return '—';
  if (x < 10) return x.toFixed(x === 0 ? 0 : 1);
  if (x < 1000) return Math.round(x).toString();
  if (x < 1e6) return `${(x / 1e3).toFixed(x < 1e4 ? 2 : 1)}k`;
  return `${(x / 1e6).toFixed(2)}M`;
}
function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}
function fmtDuration(s) {
  s = Math.max(0, Math.floor(s));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const pad = (n) => String(n).padStart(2, '0');
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${pad(m)}m`;
  if (m > 0) return `${m}m ${pad(sec)}s`;
  return `${sec}s`;
}
function fmtMs(x) {
  if (!Number.isFinite(x)) return '—';
  return x < 1 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : Math.round(x).toString();
}
function fmtClock(ms, withMillis) {
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  const base = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return withMillis ? `${base}.${pad(d.getMilliseconds(), 3)}` : base;
}
function setText(id, text) {
  const el = $(id);
  if (el && el.textContent !== text) el.textContent = text;
}
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// ---- status ----------------------------------------------------------------------------------

let clientState = hasBundle ? 'connecting' : 'no-bundle';
let reachable = true;
function renderStatus() {
  // The page's own stream decides, unless the broker does not even answer HTTP.
  const state = !reachable ? 'unreachable' : clientState;
  const labels = { 'no-bundle': 'no bundle', unreachable: 'unreachable' };
  $('status-pill').dataset.state = state;
  setText('status', labels[state] ?? state);
}

// ---- counters and rates ---------------------------------------------------------------------

/** Rates derived from successive samples: { t (ms, this page's clock), pub, del } per second. */
const points = [];
let previous; // the last stats sample, with the broker's uptime as its clock

function onStats(stats) {
  setText('connections', String(stats.connections));
  setText('subscriptions', String(stats.subscriptions));
  setText('channels', String(stats.channels));
  setText('published', String(stats.published));
  setText('delivered', String(stats.delivered));
  setText('dropped', String(stats.dropped));
  setText('slow-consumers', String(stats.slowConsumers));
  $('slow-consumers').closest('.card').classList.toggle('warn', stats.slowConsumers > 0);
  $('dropped').closest('.card').classList.toggle('bad', stats.dropped > 0);
  const attempts = stats.delivered + stats.dropped;
  setText('drop-share', attempts === 0 ? '0%' : `${((100 * stats.dropped) / attempts).toFixed(stats.dropped === 0 ? 0 : 2)}%`);
  setText('latency-avg', fmtMs(stats.latency.avgMs));
  setText('latency-p99', fmtMs(stats.latency.p99Ms));
  setText('memory-rss', fmtBytes(stats.memory.rss));
  setText('memory-heap', fmtBytes(stats.memory.heapUsed));
  // Several nodes on one Redis: which one this page shows, and whether it reaches Redis.
  const engine = stats.engine;
  if (engine && engine.node) {
    $('engine').hidden = false;
    $('engine').title = `${engine.kind} engine ${engine.redis ?? ''}`;
    setText('engine-node', engine.node);
    setText('engine-state', engine.ready ? `redis ${fmtMs(engine.rttMs ?? 0)} ms` : 'redis unreachable');
    $('engine').classList.toggle('bad', !engine.ready);
  }
  setText('uptime', fmtDuration(stats.uptime));
  setText('uptime-card', fmtDuration(stats.uptime));
  setText('started', `since ${new Date(Date.now() - stats.uptime * 1000).toLocaleString()}`);
  for (const id of ['published', 'delivered', 'dropped', 'connections']) $(id).title = grouped.format(stats[id]);

  // The broker's uptime is the clock: fetch jitter does not skew a rate, and a restart (uptime
  // going back) starts a new series instead of a negative spike.
  if (previous && stats.uptime > previous.uptime && stats.published >= previous.published) {
    const dt = stats.uptime - previous.uptime;
    const pub = (stats.published - previous.published) / dt;
    const del = (stats.delivered - previous.delivered) / dt;
    points.push({ t: Date.now(), pub, del });
    setText('publish-rate', fmtRate(pub));
    setText('delivery-rate', fmtRate(del));
    setText('legend-pub', `${fmtRate(pub)}/s`);
    setText('legend-del', `${fmtRate(del)}/s`);
  } else if (previous && stats.uptime < previous.uptime) {
    points.length = 0;
  }
  if (!previous || stats.uptime !== previous.uptime) previous = stats;
  const horizon = Date.now() - WINDOW_S * 1000 - 5000;
  while (points.length > 0 && points[0].t < horizon) points.shift();
  drawChart();
}

async function pollStats() {
  try {
    const res = await fetch('stats', { cache: 'no-store', headers: authHeaders() });
    if (res.status === 401 || res.status === 403) askForToken(res.status);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    onStats(await res.json());
    reachable = true;
  } catch {
    reachable = false;
  }
  renderStatus();
  setTimeout(pollStats, STATS_EVERY_MS);
}

// ---- chart -----------------------------------------------------------------------------------

function niceMax(x) {
  if (x <= 0) return 1;
  const exp = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * exp >= x) return m * exp;
  return 10 * exp;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

let chartGeometry; // what the hover tooltip needs from the last drawing

function drawChart() {
  const host = $('chart');
  const root = $('chart-svg');
  const width = host.clientWidth;
  const height = host.clientHeight;
  if (width === 0) return;
  const pad = { left: 46, right: 12, top: 10, bottom: 24 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const now = Date.now();
  // The span grows with the data, from MIN_SPAN_S to WINDOW_S: a fresh page shows its first
  // seconds across the whole width instead of a sliver at the right edge.
  const elapsed = points.length > 0 ? (now - points[0].t) / 1000 : 0;
  const span = Math.min(WINDOW_S, Math.max(MIN_SPAN_S, Math.ceil(elapsed / 10) * 10));
  const t0 = now - span * 1000;
  const max = niceMax(Math.max(0, ...points.map((p) => Math.max(p.pub, p.del))) * 1.08);
  const x = (t) => pad.left + ((t - t0) / (span * 1000)) * w;
  const y = (v) => pad.top + h - (v / max) * h;

  root.setAttribute('viewBox', `0 0 ${width} ${height}`);
  root.replaceChildren();
  const defs = svg('defs', {});
  for (const key of ['pub', 'del']) {
    const grad = svg('linearGradient', { id: `fill-${key}`, x1: 0, y1: 0, x2: 0, y2: 1 });
    grad.append(svg('stop', { offset: '0%', class: `stop-${key}`, 'stop-opacity': key === 'del' ? 0.28 : 0.22 }));
    grad.append(svg('stop', { offset: '100%', class: `stop-${key}`, 'stop-opacity': 0 }));
    defs.append(grad);
  }
  root.append(defs);

  const ticks = 4;
  for (let i = 0; i <= ticks; i++) {
    const v = (max * i) / ticks;
    const yy = Math.round(y(v)) + 0.5;
    root.append(svg('line', { class: i === 0 ? 'baseline' : 'gridline', x1: pad.left, x2: pad.left + w, y1: yy, y2: yy }));
    root.append(svg('text', { class: 'axis', x: pad.left - 8, y: yy + 4, 'text-anchor': 'end' }, fmtRate(v).replace(/\.0+(?=[kM]?$)/, '')));
  }
  const step = [5, 10, 15, 30, 60, 120].find((s) => span / s <= 6) ?? 60;
  for (let ago = 0; ago <= span; ago += step) {
    const xx = x(now - ago * 1000);
    const label = ago === 0 ? 'now' : ago % 60 === 0 ? `−${ago / 60} min` : `−${ago}s`;
    root.append(svg('text', { class: 'axis', x: xx, y: height - 6, 'text-anchor': ago === 0 ? 'end' : xx - pad.left < 20 ? 'start' : 'middle' }, label));
  }

  const visible = points.filter((p) => p.t >= t0 - 2000);
  host.dataset.points = String(visible.length);
  if (visible.length < 2) {
    root.append(svg('text', { class: 'waiting', x: pad.left + w / 2, y: pad.top + h / 2, 'text-anchor': 'middle' },
      'Collecting samples…'));
    chartGeometry = undefined;
    return;
  }
  for (const key of ['del', 'pub']) {
    const line = visible.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`).join('');
    const first = visible[0], last = visible[visible.length - 1];
    const area = `${line}L${x(last.t).toFixed(1)},${y(0)}L${x(first.t).toFixed(1)},${y(0)}Z`;
    root.append(svg('path', { class: `area ${key}`, d: area }));
    root.append(svg('path', { class: `line ${key}`, d: line }));
  }
  const last = visible[visible.length - 1];
  for (const key of ['del', 'pub']) root.append(svg('circle', { class: `end ${key}`, cx: x(last.t), cy: y(last[key]), r: 4 }));
  chartGeometry = { x, y, pad, w, h, visible };
}

function onChartHover(event) {
  const tip = $('chart-tip');
  const root = $('chart-svg');
  root.querySelector('.cursor')?.remove();
  if (!chartGeometry || !event) { tip.hidden = true; return; }
  const { x, pad, h, visible } = chartGeometry;
  const px = event.clientX - root.getBoundingClientRect().left;
  let best = visible[0];
  for (const p of visible) if (Math.abs(x(p.t) - px) < Math.abs(x(best.t) - px)) best = p;
  const bx = x(best.t);
  if (Math.abs(bx - px) > 40) { tip.hidden = true; return; }
  root.append(svg('line', { class: 'cursor', x1: bx, x2: bx, y1: pad.top, y2: pad.top + h }));
  tip.replaceChildren(
    el('div', 't', fmtClock(best.t)),
    rowWithSwatch('pub', `published ${fmtRate(best.pub)}/s`),
    rowWithSwatch('del', `delivered ${fmtRate(best.del)}/s`),
  );
  tip.hidden = false;
  const left = bx + 12 + tip.offsetWidth > root.clientWidth ? bx - tip.offsetWidth - 12 : bx + 12;
  tip.style.left = `${left}px`;
}
function rowWithSwatch(key, text) {
  const row = el('div');
  row.append(el('i', `swatch ${key}`), document.createTextNode(text));
  return row;
}

// ---- channels and slow consumers ------------------------------------------------------------

function onTop(top) {
  const channels = top.channels.top;
  const most = channels.reduce((m, c) => Math.max(m, c.subscribers), 1);
  $('channel-rows').replaceChildren(...channels.map((c) => {
    const tr = el('tr');
    tr.dataset.channel = c.name;
    const name = el('td');
    name.append(el('code', '', c.name));
    if (c.pattern) name.append(el('span', 'pill', 'pattern'));
    const count = el('td', 'num');
    const bar = el('div', 'bar');
    const track = el('span', 'track');
    const fill = el('i');
    fill.style.width = `${Math.max(2, (100 * c.subscribers) / most)}%`;
    track.append(fill);
    bar.append(track, el('span', '', grouped.format(c.subscribers)));
    count.append(bar);
    tr.append(name, count);
    return tr;
  }));
  $('channels-empty').hidden = channels.length > 0;
  $('channel-table').hidden = channels.length === 0;
  setText('channels-hint', top.channels.total > channels.length
    ? `top ${channels.length} of ${grouped.format(top.channels.total)} subscribed names and patterns`
    : 'subscribed names and patterns, most subscribers first');

  const slow = top.slowConsumers.top;
  const now = Date.now();
  $('slow-rows').replaceChildren(...slow.map((s) => {
    const tr = el('tr');
    tr.dataset.uuid = s.uuid;
    const id = el('td');
    id.append(el('code', '', s.uuid));
    const backlog = el('td', 'num', `${grouped.format(s.events)} · ${fmtBytes(s.bytes)}`);
    const dropped = el('td', 'num bad-text', grouped.format(s.dropped));
    tr.append(id, backlog, dropped, el('td', 'num', fmtDuration((now - s.since) / 1000)));
    return tr;
  }));
  $('slow-empty').hidden = slow.length > 0;
  $('slow-table').hidden = slow.length === 0;
}

async function pollTop() {
  try {
    const res = await fetch(`stats/top?limit=${TOP_LIMIT}`, { cache: 'no-store', headers: authHeaders() });
    if (res.ok) onTop(await res.json());
  } catch {
    // pollStats reports an unreachable broker
  }
  setTimeout(pollTop, TOP_EVERY_MS);
}

// ---- live tail -------------------------------------------------------------------------------

const strict = new TextDecoder('utf-8', { fatal: true });
/** Text when the bytes are printable UTF-8, else a hex preview. */
function preview(bytes) {
  try {
    const text = strict.decode(bytes);
    // eslint-disable-next-line no-control-regex
    if (!/[\u0000-\u0008\u000e-\u001f\u007f]/.test(text)) {
      const flat = text.replace(/\s+/g, ' ');
      return { text: flat.length > PAYLOAD_PREVIEW ? `${flat.slice(0, PAYLOAD_PREVIEW)}…` : flat, hex: false };
    }
  } catch {
    // not UTF-8
  }
  const head = Array.from(bytes.subarray(0, 24), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return { text: bytes.length > 24 ? `${head} …` : head, hex: true };
}

let client;
let subscription;
let paused = false;
let pending = []; // events received and not yet rendered, oldest first
let renderQueued = false;
let received = 0;
let missed = 0;
/** Why the tail may lack events after the last reconnect (a resume that did not recover them). */
let gap;

function tailRow(event) {
  const row = el('div', 'row');
  row.dataset.channel = event.channel;
  row.dataset.offset = String(event.offset);
  const { text, hex } = preview(event.data);
  row.append(
    el('span', 'time', fmtClock(event.time, true)),
    el('span', 'channel', event.channel),
    el('span', 'offset num', `#${event.offset}`),
    el('span', hex ? 'payload hex' : 'payload', text),
    el('span', 'size num', fmtBytes(event.data.length)),
  );
  row.title = `${event.channel} · offset ${event.offset} · epoch ${event.epoch} · id ${event.id}`;
  return row;
}

function renderTail() {
  renderQueued = false;
  if (paused || pending.length === 0) return;
  const tail = $('tail');
  const batch = pending.slice(-TAIL_MAX);
  pending = [];
  const fragment = document.createDocumentFragment();
  for (let i = batch.length - 1; i >= 0; i--) fragment.append(tailRow(batch[i]));
  tail.prepend(fragment);
  while (tail.childElementCount > TAIL_MAX) tail.lastElementChild.remove();
  $('tail-empty').hidden = true;
  updateTailInfo();
}

function onTailEvent(event) {
  received++;
  pending.push(event);
  if (pending.length > 2 * TAIL_MAX) pending = pending.slice(-TAIL_MAX);
  if (!renderQueued && !paused) {
    renderQueued = true;
    requestAnimationFrame(renderTail);
  }
}

function updateTailInfo() {
  const info = $('tail-info');
  const parts = [`${grouped.format(received)} received`];
  if (missed > 0) parts.push(`${grouped.format(missed)} missed (this page was too slow)`);
  if (gap !== undefined) parts.push(`events published while disconnected may be missing (${gap.replace(/_/g, ' ')}): reload to start afresh`);
  if (paused) parts.push(`paused, ${grouped.format(Math.min(pending.length, TAIL_MAX))} waiting`);
  info.textContent = `the last ${TAIL_MAX} events matching ${subscription ? subscription.pattern : '—'}, newest first · ${parts.join(' · ')}`;
}

function tail(pattern) {
  if (subscription) void subscription.unsubscribe();
  subscription = client.subscribe(pattern, onTailEvent);
  const sub = subscription;
  sub.ready.then(
    () => updateTailInfo(),
    (err) => {
      if (subscription !== sub) return;
      $('tail-info').textContent = `cannot tail ${pattern}: ${err.code ?? 'error'}: ${err.message}`;
    },
  );
  updateTailInfo();
}

// ---- publish ---------------------------------------------------------------------------------

async function onPublish(event) {
  event.preventDefault();
  const result = $('publish-result');
  const channel = $('publish-channel').value.trim();
  const data = $('publish-data').value;
  result.dataset.result = 'pending';
  result.textContent = 'publishing…';
  try {
    const ack = await client.publish(channel, Crier.encodeText(data));
    result.dataset.result = 'ok';
    result.replaceChildren('acked: offset ', el('code', '', String(ack.offset)), ' · id ', el('code', '', ack.id));
    result.dataset.offset = String(ack.offset);
    result.dataset.id = ack.id;
  } catch (err) {
    result.dataset.result = 'error';
    result.replaceChildren(el('code', '', err.code ?? 'error'), ` ${err.message}`);
    delete result.dataset.offset;
    delete result.dataset.id;
  }
}

// ---- start -----------------------------------------------------------------------------------

function start() {
  setText('broker-url', wsUrl);
  renderStatus();
  pollStats();
  pollTop();
  $('chart').addEventListener('mousemove', onChartHover);
  $('chart').addEventListener('mouseleave', () => onChartHover(undefined));
  new ResizeObserver(() => drawChart()).observe($('chart'));

  if (!hasBundle) {
    const notice = $('notice');
    notice.replaceChildren(
      'The browser bundle ', el('code', '', 'crier.min.js'), ' is missing from this broker: run the build (',
      el('code', '', 'npm run build'), '). Counters still update; the live tail and publishing need the bundle.',
    );
    notice.hidden = false;
    for (const node of document.querySelectorAll('#tail-form input, #tail-form button, #publish-form input, #publish-form textarea, #publish-form button')) {
      node.disabled = true;
    }
    setText('tail-empty', 'The live tail needs crier.min.js.');
    return;
  }

  connectClient();
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const given = $('token-input').value.trim();
    if (given === '') return;
    token = given;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token-input').value = '';
    $('token-form').hidden = true;
    void client.quit();
    connectClient();
    tail($('tail-pattern').value.trim() || '>');
  });

  tail($('tail-pattern').value.trim() || '>');
  $('tail-form').addEventListener('submit', (event) => {
    event.preventDefault();
    tail($('tail-pattern').value.trim() || '>');
  });
  $('tail-pause').addEventListener('click', () => {
    paused = !paused;
    $('tail-pause').setAttribute('aria-pressed', String(paused));
    $('tail-pause').textContent = paused ? 'Resume' : 'Pause';
    if (!paused) renderTail();
    updateTailInfo();
  });
  $('tail-clear').addEventListener('click', () => {
    pending = [];
    $('tail').replaceChildren();
    $('tail-empty').hidden = false;
    updateTailInfo();
  });
  $('publish-form').addEventListener('submit', onPublish);
}

/** The page's own stream, with the token when there is one; a refused one asks for another. */
function connectClient() {
  client = Crier.connect(wsUrl, { reconnect: { maxDelay: 5000 }, ...(token ? { token } : {}) });
  client.on('error', (err) => {
    if (err.code === 'unauthorized' || err.code === 'forbidden') askForToken(err.code === 'forbidden' ? 403 : 401);
  });
  client.on('state', (state) => {
    clientState = state;
    renderStatus();
  });
  client.on('dropped', ({ total }) => {
    missed += total;
    updateTailInfo();
  });
  // After a reconnect the SDK resumes: the broker replays what the tail missed meanwhile, or says
  // it cannot (the broker restarted, history was trimmed…), which the tail then says too.
  client.on('resumed', (info) => {
    gap = info.recovered ? undefined : info.reason ?? 'unknown';
    updateTailInfo();
  });
  // The SDK itself quits on unload and suspends/resumes around the back/forward cache.
}

start();

// Portcullis web view: reads the switch through the /v1 API with the operator's
// bearer token and draws it. Read-only: every request is a GET. Every value is
// written with textContent or as an SVG attribute, never parsed as HTML (port
// names, event details and hostnames can come from guests).
'use strict';

const POLL_MS = 2000;
const HISTORY = 300; // samples kept for the drops chart: 10 minutes at POLL_MS
const EVENTS_KEPT = 200;
const TOKEN_KEY = 'portcullis-token';
const PALETTE = ['#d6336c', '#1c7ed6', '#f08c00', '#2f9e44', '#7048e8', '#0c8599', '#a61e4d', '#5c940d'];
const SVG_NS = 'http://www.w3.org/2000/svg';

let token = null;
let timer = null;
let stopped = false;
let prevPorts = null; // {at, byName}
const dropSamples = []; // {at, drops: {reason: count}}
const reasonColor = new Map();
let lastSeq = 0;
const events = [];

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

function row(cells) {
  const tr = document.createElement('tr');
  for (const c of cells) {
    if (c instanceof Node) {
      const td = document.createElement('td');
      td.appendChild(c);
      tr.appendChild(td);
    } else {
      tr.appendChild(el('td', c));
    }
  }
  return tr;
}

function fillBody(table, rows) {
  const tbody = $(table).tBodies[0];
  tbody.replaceChildren(...rows);
}

// ---- the token ---------------------------------------------------------------

// `#token=…` in the address (the fragment never reaches the server): kept in this
// tab's sessionStorage and removed from the address bar and history.
function takeToken() {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (m) {
    try {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    } catch (e) { /* storage off: the token lives in this page only */ token = decodeURIComponent(m[1]); }
    history.replaceState(null, '', location.pathname + location.search);
  }
  if (!token) {
    try { token = sessionStorage.getItem(TOKEN_KEY); } catch (e) { token = null; }
  }
}

function showLogin(message) {
  $('content').hidden = true;
  $('login').hidden = false;
  status(message, 'error');
}

function status(text, kind) {
  const s = $('status');
  s.textContent = text;
  s.className = kind || '';
}

// ---- the API -------------------------------------------------------------------

class Refused extends Error {
  constructor(status, code, message) {
    super(`refused: ${status} ${code} — ${message}`);
    this.refused = true;
  }
}

async function get(path) {
  const resp = await fetch(path, {
    method: 'GET',
    headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
    cache: 'no-store',
    credentials: 'omit',
    redirect: 'error',
  });
  let body = null;
  try { body = await resp.json(); } catch (e) { body = null; }
  const err = body && body.error ? body.error : { code: 'error', message: resp.statusText };
  if (resp.status === 401 || resp.status === 403) throw new Refused(resp.status, err.code, err.message);
  if (!resp.ok) throw new Error(`${path}: ${resp.status} ${err.code} — ${err.message}`);
  return body;
}

// ---- formatting ----------------------------------------------------------------

function vlanText(v) {
  if (!v) return '-';
  if (v.mode === 'access') return `access ${v.vid}`;
  const ranges = (v.allowed || []).map((r) => (r.first === r.last ? `${r.first}` : `${r.first}-${r.last}`));
  let s = `trunk ${ranges.length ? ranges.join(',') : '-'}`;
  if (v.native !== undefined && v.native !== null) s += ` native ${v.native}`;
  return s;
}

function duration(secs) {
  const d = Math.floor(secs / 86400), h = Math.floor(secs / 3600) % 24;
  const m = Math.floor(secs / 60) % 60, s = Math.floor(secs % 60);
  return (d ? `${d}d ` : '') + `${h}h ${String(m).padStart(2, '0')}m ${String(s).padStart(2, '0')}s`;
}

function si(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(n >= 10 || n === 0 ? 0 : 1);
}

// The increase of a counter; a counter that went down (cleared, port re-added)
// restarts from zero.
const delta = (cur, prev) => (prev === undefined || cur < prev ? cur : cur - prev);

function dropTotal(c) {
  let n = 0;
  for (const v of Object.values(c.rx_drops || {})) n += v;
  for (const v of Object.values(c.tx_drops || {})) n += v;
  return n;
}

function colorOf(reason) {
  if (!reasonColor.has(reason)) reasonColor.set(reason, PALETTE[reasonColor.size % PALETTE.length]);
  return reasonColor.get(reason);
}

// ---- sections ------------------------------------------------------------------

// Who uses a runtime port (its owner's metadata), as `show ports` says it.
function usedBy(p) {
  if (!p.runtime) return '-';
  const o = p.owner || {};
  const short = (v) => String(v).slice(0, 12);
  if (o.domain) return `vm:${o.domain}`;
  if (o.container_id) return `ctr:${short(o.container_id)}`;
  const uuid = o.domain_uuid || o['vm-uuid'];
  if (uuid) return `vm:${short(uuid)}`;
  const first = Object.keys(o).sort()[0];
  return first ? `${first}:${o[first]}` : 'runtime';
}

function drawPorts(ports, at) {
  const before = prevPorts;
  const rows = ports.map((p) => {
    const c = p.counters;
    const was = before && before.byName.get(p.name);
    const dt = before ? (at - before.at) / 1000 : 0;
    const rate = (cur, prev) => (was && dt > 0 ? delta(cur, prev) / dt : null);
    const w = was ? was.counters : {};
    const inF = rate(c.rx_frames, w.rx_frames), inB = rate(c.rx_bytes, w.rx_bytes);
    const outF = rate(c.tx_frames, w.tx_frames), outB = rate(c.tx_bytes, w.tx_bytes);
    const drops = rate(dropTotal(c), was ? dropTotal(w) : undefined);
    // As top: a guest's TX is the switch's ingress, an uplink's TX its egress.
    const uplink = p.role === 'uplink';
    const [txF, txB, rxF, rxB] = uplink ? [outF, outB, inF, inB] : [inF, inB, outF, outB];
    const fmt = (v, bits) => (v === null ? '…' : si(bits ? v * 8 : v));
    let state = p.state;
    if (p.err_disabled) state += ` (${p.err_disabled})`;
    const stateCell = el('span', state, `state state-${p.state}`);
    let eff = p.effective_mac || '-';
    if (p.mac_change_blocked) eff += ' (blocked)';
    const tr = row([
      p.name, p.role, stateCell, p.port_group || '-', vlanText(p.vlan),
      p.initial_mac || '-', eff, p.uplink || '-', usedBy(p),
      fmt(txF), fmt(txB, true), fmt(rxF), fmt(rxB, true), fmt(drops),
    ]);
    for (let i = 9; i < 14; i++) tr.cells[i].className = 'num';
    tr.dataset.port = p.name;
    return tr;
  });
  fillBody('ports', rows);
  prevPorts = { at, byName: new Map(ports.map((p) => [p.name, p])) };
}

function drawTeam(uplinks, ports, name) {
  const team = $('team');
  const sw = el('div', `switch ${name}`, 'team-switch');
  const row2 = el('div', null, 'team-uplinks');
  const pinned = new Set();
  for (const u of uplinks) {
    const box = el('div', null, `team-uplink state-${u.state}`);
    box.dataset.uplink = u.name;
    box.appendChild(el('div', u.name, 'team-name'));
    box.appendChild(el('div', `${u.interface} · ${u.state} · ${vlanText(u.vlan)}`, 'team-meta'));
    box.appendChild(el('div', `rx ${u.rx_frames} · tx ${u.tx_frames} frames`, 'team-meta'));
    const list = el('ul', null, 'team-guests');
    for (const g of u.guests) {
      pinned.add(g);
      list.appendChild(el('li', g, 'chip'));
    }
    if (!u.guests.length) list.appendChild(el('li', 'no guests', 'chip chip-none'));
    box.appendChild(list);
    row2.appendChild(box);
  }
  const local = ports.filter((p) => p.role !== 'uplink' && !pinned.has(p.name));
  if (local.length || !uplinks.length) {
    const box = el('div', null, 'team-uplink team-local');
    box.appendChild(el('div', uplinks.length ? 'no uplink in use' : 'no uplinks (host-local switch)', 'team-name'));
    const list = el('ul', null, 'team-guests');
    for (const p of local) list.appendChild(el('li', p.name, 'chip'));
    box.appendChild(list);
    row2.appendChild(box);
  }
  team.replaceChildren(sw, row2);
}

function drawDrops() {
  const W = 900, H = 220, L = 56, R = 10, T = 10, B = 24;
  const series = new Map(); // reason → [rate per interval]
  const n = dropSamples.length - 1;
  for (let i = 1; i <= n; i++) {
    const a = dropSamples[i - 1], b = dropSamples[i];
    const dt = (b.at - a.at) / 1000;
    for (const reason of new Set([...Object.keys(a.drops), ...Object.keys(b.drops)])) {
      if (!series.has(reason)) series.set(reason, new Array(n).fill(0));
      series.get(reason)[i - 1] = dt > 0 ? delta(b.drops[reason] || 0, a.drops[reason]) / dt : 0;
    }
  }
  const reasons = [...series.keys()].sort();
  const stacked = new Array(n).fill(0);
  let max = 0;
  for (const r of reasons) series.get(r).forEach((v, i) => { stacked[i] += v; max = Math.max(max, stacked[i]); });
  // The y axis ends at a round number (1, 2 or 5 × 10ⁿ) above the highest stack.
  let top = 1;
  if (max > 0) {
    const p = 10 ** Math.floor(Math.log10(max));
    top = [1, 2, 5, 10].map((m) => m * p).find((v) => v >= max * 1.05) || 10 * p;
  }
  const x = (i) => L + (n > 1 ? (i / (n - 1)) * (W - L - R) : (W - L - R));
  const y = (v) => T + (H - T - B) * (1 - v / top);

  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'drops per second by reason' });
  chart.appendChild(svg('rect', { x: L, y: T, width: W - L - R, height: H - T - B, fill: '#fbfbfd', stroke: '#dee2e6' }));
  for (const f of [0, 0.5, 1]) {
    const v = top * f;
    chart.appendChild(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#e9ecef' }));
    const t = svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' });
    t.textContent = si(v);
    chart.appendChild(t);
  }
  const span = dropSamples.length > 1 ? (dropSamples[dropSamples.length - 1].at - dropSamples[0].at) / 1000 : 0;
  for (const [label, anchor, at] of [[`−${Math.round(span)} s`, 'start', L], ['now', 'end', W - R]]) {
    const t = svg('text', { x: at, y: H - 6, 'text-anchor': anchor, class: 'axis' });
    t.textContent = label;
    chart.appendChild(t);
  }
  // Stacked areas, the first reason at the bottom, each with its top edge drawn.
  const base = new Array(n).fill(0);
  for (const r of reasons) {
    const vals = series.get(r);
    if (n < 1) break;
    const upper = vals.map((v, i) => base[i] + v);
    let d = '';
    upper.forEach((v, i) => { d += `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)} `; });
    for (let i = n - 1; i >= 0; i--) d += `L${x(i).toFixed(1)},${y(base[i]).toFixed(1)} `;
    chart.appendChild(svg('path', { d: `${d}Z`, fill: colorOf(r), 'fill-opacity': 0.35, stroke: 'none' }));
    let edge = '';
    upper.forEach((v, i) => { edge += `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)} `; });
    if (n === 1) edge += `L${(x(0) - 8).toFixed(1)},${y(upper[0]).toFixed(1)}`;
    chart.appendChild(svg('path', { d: edge, fill: 'none', stroke: colorOf(r), 'stroke-width': 3 }));
    upper.forEach((v, i) => { base[i] = v; });
  }
  if (n < 1) {
    const t = svg('text', { x: (L + W) / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis' });
    t.textContent = 'waiting for a second sample…';
    chart.appendChild(t);
  }
  const box = $('drops-chart');
  box.replaceChildren(chart);
  // Where the chart is on the page (x,y,width,height in CSS pixels): lab_web
  // looks for the series colours there in its screenshot.
  const r = chart.getBoundingClientRect();
  box.dataset.rect = [r.left + scrollX, r.top + scrollY, r.width, r.height].map(Math.round).join(',');

  const latest = dropSamples.length ? dropSamples[dropSamples.length - 1].drops : {};
  const items = Object.keys(latest).sort().map((r) => {
    const li = document.createElement('li');
    li.dataset.reason = r;
    li.dataset.color = colorOf(r);
    const sw = svg('svg', { width: 14, height: 14, class: 'swatch' });
    sw.appendChild(svg('rect', { width: 14, height: 14, rx: 3, fill: colorOf(r) }));
    li.appendChild(sw);
    const vals = series.get(r);
    const now = vals && vals.length ? vals[vals.length - 1] : 0;
    li.appendChild(el('span', ` ${r}: ${latest[r]} total, ${si(now)}/s`));
    return li;
  });
  if (!items.length) items.push(el('li', 'no drops', 'note'));
  $('drops-legend').replaceChildren(...items);
}

function drawBindings(view) {
  const rows = view.bindings.map((b) => row([
    b.vlan, b.ip, b.mac, b.port, b.source,
    b.lease_left_secs === null || b.lease_left_secs === undefined ? 'never expires' : duration(b.lease_left_secs),
    b.duid || '',
  ]));
  for (const tr of rows) tr.cells[5].className = 'num';
  if (!rows.length) rows.push(row(['no bindings', '', '', '', '', '', '']));
  fillBody('bindings', rows);
}

function drawEvents(fresh) {
  for (const e of fresh) {
    lastSeq = Math.max(lastSeq, e.seq);
    events.unshift(e);
  }
  events.length = Math.min(events.length, EVENTS_KEPT);
  const rows = events.map((e) => row([e.time, e.seq, e.port, e.event, JSON.stringify(e.detail)]));
  if (!rows.length) rows.push(row(['no events yet', '', '', '', '']));
  fillBody('events', rows);
}

// ---- polling -------------------------------------------------------------------

async function poll() {
  timer = null;
  try {
    const [st, ports, counters, uplinks, bindings, fresh] = await Promise.all([
      get('/v1/status'), get('/v1/ports'), get('/v1/counters'), get('/v1/uplinks'),
      get('/v1/bindings'), get(`/v1/events?after_seq=${lastSeq}`),
    ]);
    const at = performance.now();
    // A daemon restarted since: its event numbers start again.
    if (fresh.length && fresh[0].seq <= lastSeq) { events.length = 0; lastSeq = 0; }
    $('switch-name').textContent = st.switch;
    $('uptime').textContent = duration(st.uptime_secs);
    $('updated').textContent = `${new Date().toISOString().slice(11, 19)} UTC`;
    dropSamples.push({ at, drops: counters.drops });
    if (dropSamples.length > HISTORY) dropSamples.shift();
    $('content').hidden = false; // before drawing: the chart measures its place
    drawPorts(ports, at);
    drawTeam(uplinks, ports, st.switch);
    drawDrops();
    drawBindings(bindings);
    drawEvents(fresh);
    status(`${ports.length} ports · polling every ${POLL_MS / 1000} s`, 'ok');
  } catch (e) {
    if (e.refused) return refused(e);
    status(`error: ${e.message} (retrying)`, 'error');
  }
  if (!stopped) timer = setTimeout(poll, POLL_MS);
}

// A 401 or 403: shown as it is, polling stops, the token is forgotten.
function refused(e) {
  stopped = true;
  if (timer) clearTimeout(timer);
  try { sessionStorage.removeItem(TOKEN_KEY); } catch (x) { /* nothing kept */ }
  token = null;
  for (const t of ['ports', 'bindings', 'events']) fillBody(t, []);
  $('team').replaceChildren();
  $('drops-chart').replaceChildren();
  $('drops-legend').replaceChildren();
  showLogin(e.message);
}

async function start() {
  stopped = false;
  try {
    const who = await get('/v1/whoami');
    $('whoami').textContent = who.user;
    $('role').textContent = who.role || 'none';
  } catch (e) {
    if (e.refused) return refused(e);
    status(`error: ${e.message}`, 'error');
    return;
  }
  $('login').hidden = true;
  poll();
}

document.addEventListener('DOMContentLoaded', () => {
  $('login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = $('token').value.trim();
    $('token').value = '';
    if (!t) return;
    token = t;
    try { sessionStorage.setItem(TOKEN_KEY, t); } catch (e) { /* kept in the page only */ }
    status('Loading…');
    start();
  });
  takeToken();
  if (token) start();
  else showLogin('Enter a bearer token, or open this page as /ui/#token=pcl_…');
});

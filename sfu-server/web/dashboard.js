// The operators' dashboard: every room live, from the server's `/api/events` stream
// (server-sent events, one state of every room per second). Names come from clients, so
// everything is put in the page as text, never as HTML.
'use strict';

const HISTORY_SECONDS = 300;
const params = new URLSearchParams(location.search);
let token = params.get('token') || localStorage.getItem('sfu-admin-token') || '';
let latest = { rooms: [] };
let events = null;
/** Series name → [{t, v}] over the last HISTORY_SECONDS. */
const history = new Map();
/** Last cumulative forwarded packets per room, to derive a rate. */
const lastForwarded = new Map();

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k === 'onclick') node.addEventListener('click', v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function bits(bps) {
  if (bps == null) return '–';
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(2)} Mbit/s`;
  if (bps >= 1e3) return `${(bps / 1e3).toFixed(0)} kbit/s`;
  return `${bps} bit/s`;
}
const pct = (f) => (f == null ? '–' : `${(f * 100).toFixed(1)} %`);
const ms = (v) => (v == null ? '–' : `${v.toFixed(1)} ms`);
const secs = (s) => (s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(0)} s`);

function setStatus(text, kind) {
  const s = $('status');
  s.textContent = text;
  s.className = `status ${kind || ''}`;
}

function remember(name, t, v) {
  if (v == null || Number.isNaN(v)) return;
  let series = history.get(name);
  if (!series) history.set(name, (series = []));
  series.push({ t, v });
  while (series.length && series[0].t < t - HISTORY_SECONDS * 1000) series.shift();
}

function record(state) {
  const t = state.at_ms;
  for (const room of state.rooms) {
    const ingress = room.participants.flatMap((p) => p.published).flatMap((tr) => tr.layers).reduce((a, l) => a + l.bitrate_bps, 0);
    remember(`room:${room.room}:ingress`, t, ingress);
    const before = lastForwarded.get(room.room);
    if (before) remember(`room:${room.room}:forwarded`, t, (room.forwarded_packets - before.packets) / ((t - before.t) / 1000));
    lastForwarded.set(room.room, { t, packets: room.forwarded_packets });
    for (const p of room.participants) {
      for (const c of p.consumers) {
        remember(`consumer:${p.id}:${c.track_id}:bitrate`, t, c.stream.bitrate_bps);
        remember(`consumer:${p.id}:${c.track_id}:loss`, t, c.stream.loss);
      }
      for (const tr of p.published) {
        for (const l of tr.layers) remember(`track:${tr.id}:${l.rid ?? ''}:bitrate`, t, l.bitrate_bps);
      }
    }
  }
}

/** Draw series on a canvas, each scaled to its own maximum. */
function plot(canvas, seriesList) {
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const now = latest.at_ms ?? 0;
  seriesList.forEach(({ name, color, label }, i) => {
    const series = history.get(name) || [];
    const max = Math.max(1e-9, ...series.map((p) => p.v));
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    series.forEach((p, j) => {
      const x = width - ((now - p.t) / (HISTORY_SECONDS * 1000)) * width;
      const y = height - 4 - (p.v / max) * (height - 8);
      if (j === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
    if (label) {
      ctx.fillStyle = color;
      ctx.font = '12px system-ui';
      ctx.fillText(label, 6, 14 + i * 14);
    }
  });
}

function spark(name, color) {
  const canvas = el('canvas', { class: 'spark', width: 160, height: 28, 'data-series': name });
  plot(canvas, [{ name, color }]);
  return canvas;
}

function renderRooms() {
  const body = $('rooms').querySelector('tbody');
  body.replaceChildren();
  for (const room of latest.rooms) {
    const ingress = room.participants.flatMap((p) => p.published).flatMap((t) => t.layers).reduce((a, l) => a + l.bitrate_bps, 0);
    const fwd = history.get(`room:${room.room}:forwarded`)?.at(-1)?.v;
    body.append(el('tr', { class: 'link', 'data-room': room.room, onclick: () => { location.hash = `room=${encodeURIComponent(room.room)}`; } },
      el('td', {}, room.room),
      el('td', { class: 'num' }, room.participants.length),
      el('td', { class: 'num' }, room.participants.reduce((a, p) => a + p.published.length, 0)),
      el('td', { class: 'num' }, room.participants.reduce((a, p) => a + p.consumers.length, 0)),
      el('td', { class: 'num ingress' }, bits(ingress)),
      el('td', { class: 'num' }, fwd == null ? '–' : `${fwd.toFixed(0)} pkt/s`),
      el('td', { class: 'num' }, secs(room.age_secs))));
  }
  $('no-rooms').hidden = latest.rooms.length > 0;
  renderOtherNodes(latest.other_nodes_rooms ?? []);
}

/** Rooms of the cluster's other nodes, each linking to the dashboard of its node. */
function renderOtherNodes(rooms) {
  const body = $('other-rooms').querySelector('tbody');
  body.replaceChildren();
  for (const room of rooms) {
    const dashboard = room.node_url.replace(/^ws/, 'http').replace(/\/ws$/, '/dashboard');
    body.append(el('tr', { 'data-room': room.room },
      el('td', {}, room.room),
      el('td', { class: 'num' }, room.participants),
      el('td', {}, el('a', { href: `${dashboard}#room=${encodeURIComponent(room.room)}` }, room.node))));
  }
  $('other-nodes').hidden = rooms.length === 0;
}

function renderRoom(name) {
  const room = latest.rooms.find((r) => r.room === name);
  $('room-title').textContent = room ? `Room ${name}` : `Room ${name} (closed)`;
  plot($('room-plot'), [
    { name: `room:${name}:ingress`, color: '#38bdf8', label: 'ingress bitrate' },
    { name: `room:${name}:forwarded`, color: '#a78bfa', label: 'forwarded packets/s' },
  ]);
  const box = $('participants');
  box.replaceChildren();
  if (!room) return;
  const names = new Map(room.participants.map((p) => [p.id, p.name]));
  for (const p of room.participants) {
    const c = p.connection;
    const pair = c.selected_pair;
    const card = el('div', { class: 'participant', 'data-participant': p.id },
      el('h3', {}, `${p.name} `, el('span', { class: 'muted' }, p.id)),
      el('div', { class: 'facts' },
        el('span', { class: p.connected ? 'on' : 'off' }, p.connected ? 'connected' : 'not connected'),
        ` · RTT ${ms(c.rtt_ms)} · loss in ${pct(c.ingress_loss)} / out ${pct(c.egress_loss)}`,
        ` · estimate ${bits(p.bandwidth_estimate_bps)}`,
        pair ? ` · ${pair.protocol} ${pair.remote_kind} ${pair.remote} → ${pair.local}` : ' · no candidate pair yet',
        ` · joined ${secs(p.joined_secs)} ago`),
      el('div', { class: 'timeline' }, c.timeline.map((s) => `${s.at_secs.toFixed(2)} s ${s.state}`).join(' → ')));
    if (p.published.length) {
      const table = el('table', {}, el('tr', {}, ...['track', 'kind', 'codec', 'layer', 'arriving', 'bitrate', 'last 5 min', 'receivers'].map((h) => el('th', {}, h))));
      for (const t of p.published) {
        for (const l of t.layers) {
          table.append(el('tr', { class: 'layer' },
            el('td', {}, t.id, t.muted ? ' (muted)' : ''), el('td', {}, t.kind), el('td', {}, t.codec),
            el('td', {}, l.rid ?? '–'),
            el('td', { class: l.active ? 'on' : 'off' }, l.active ? 'yes' : 'no'),
            el('td', { class: 'num bitrate' }, bits(l.bitrate_bps)),
            el('td', {}, spark(`track:${t.id}:${l.rid ?? ''}:bitrate`, '#38bdf8')),
            el('td', { class: 'num' }, t.subscribers)));
        }
      }
      card.append(el('h4', {}, 'publishes'), table);
    }
    if (p.consumers.length) {
      const table = el('table', {}, el('tr', {}, ...['track', 'from', 'wanted', 'forwarded', 'bitrate', 'last 5 min', 'loss', 'loss 5 min', 'RTT', 'jitter', 'NACK/PLI/FIR'].map((h) => el('th', {}, h))));
      for (const k of p.consumers) {
        const s = k.stream;
        table.append(el('tr', { class: 'consumer' },
          el('td', {}, k.track_id, ` (${k.kind})`),
          el('td', {}, names.get(k.publisher_id) ?? k.publisher_id),
          el('td', {}, k.wanted_layer == null ? 'paused' : k.simulcast ? ['low', 'medium', 'high'][k.wanted_layer] ?? k.wanted_layer : '–'),
          el('td', {}, k.simulcast || k.forwarded === 'off' ? k.forwarded : 'on'),
          el('td', { class: 'num bitrate' }, bits(s.bitrate_bps)),
          el('td', {}, spark(`consumer:${p.id}:${k.track_id}:bitrate`, '#38bdf8')),
          el('td', { class: 'num' }, pct(s.loss)),
          el('td', {}, spark(`consumer:${p.id}:${k.track_id}:loss`, '#f87171')),
          el('td', { class: 'num' }, ms(s.rtt_ms)),
          el('td', { class: 'num' }, s.jitter ?? '–'),
          el('td', { class: 'num' }, `${s.nacks}/${s.plis}/${s.firs}`)));
      }
      card.append(el('h4', {}, 'receives'), table);
    }
    box.append(card);
  }
}

function render() {
  const match = location.hash.match(/^#room=(.+)$/);
  $('rooms-view').hidden = Boolean(match);
  $('room-view').hidden = !match;
  if (match) renderRoom(decodeURIComponent(match[1]));
  else renderRooms();
}

async function connect() {
  if (events) events.close();
  const auth = token ? { authorization: `Bearer ${token}` } : {};
  const probe = await fetch('/api/rooms', { headers: auth }).catch(() => null);
  if (!probe || probe.status === 401 || probe.status === 403) {
    const why = probe ? (await probe.json().catch(() => ({}))).error?.message : 'server unreachable';
    setStatus(why || 'admin token needed', 'error');
    $('token-form').hidden = false;
    return;
  }
  $('token-form').hidden = true;
  events = new EventSource(`/api/events${token ? `?access_token=${encodeURIComponent(token)}` : ''}`);
  events.addEventListener('rooms', (e) => {
    latest = JSON.parse(e.data);
    record(latest);
    render();
    setStatus(`live · ${latest.rooms.length} room(s)`, 'live');
  });
  events.onerror = () => setStatus('reconnecting…', 'error');
}

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  token = $('token').value;
  localStorage.setItem('sfu-admin-token', token);
  connect();
});
$('home').addEventListener('click', (e) => { e.preventDefault(); location.hash = ''; });
window.addEventListener('hashchange', render);
connect();

// Limits on a running server: the tracks str0m would receive, offers per second and what they
// cause, seats of participants that never negotiate, joins in progress and connections waiting
// to join, each answered with its error code while the server keeps serving; a client that
// stops reading is dropped, not buffered for. (Raw WebSocket clients and a raw-socket Python
// client; the limits come from config files. Rooms and participants per server, the message
// rate and SDP size are Rust tests of the session.)

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { makeTempDir, startServer, waitFor, sleep, getHealth, rawOffer } from './lib.mjs';

const SLOW_READER = fileURLToPath(new URL('./slow-reader.py', import.meta.url));
const PAUSED_READER = fileURLToPath(new URL('./paused-reader.py', import.meta.url));

async function client(server) {
  const ws = new WebSocket(server.wsUrl);
  const messages = [];
  ws.on('message', (data) => messages.push(JSON.parse(data.toString())));
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const next = (type) => waitFor(() => messages.find((m) => m.type === type) || Promise.reject(new Error(`no ${type}`)), 5000, type);
  return { ws, messages, next, send: (m) => ws.send(JSON.stringify(m)) };
}

async function joined(server, room) {
  const c = await client(server);
  c.send({ type: 'join', room, name: 'n' });
  await waitFor(() => c.messages.length > 0 || Promise.reject(new Error('no reply')), 5000, 'join reply');
  return c;
}

describe('track caps', () => {
  let server;
  before(async () => {
    const tmp = makeTempDir();
    const config = path.join(tmp, 'tracks.toml');
    fs.writeFileSync(config, ['max_tracks_per_participant = 2', 'max_tracks_per_room = 3', 'max_messages_per_second = 1000', ''].join('\n'));
    server = await startServer(tmp, { extraArgs: ['--config', config] });
  });
  after(async () => { if (server) await server.stop(); });

  // Requirement: the caps count what str0m receives on: port-0 m-lines inside BUNDLE
  // (a=bundle-only) are tracks; a room-wide cap holds across publishers; a track may not name
  // more than three simulcast layers nor declare more than six SSRCs.
  it('counts every track str0m would receive, in the participant and the room', async () => {
    const a = await joined(server, 'caps');
    const b = await joined(server, 'caps');
    const hidden = await offerOf(a, rawOffer([{ kind: 'audio' }, { kind: 'video', port: 0, bundleOnly: true }, { kind: 'video', port: 0, bundleOnly: true }]));
    assert.equal(hidden.code, 'too_large', JSON.stringify(hidden));
    assert.match(hidden.message, /3 tracks; the limit is 2/);
    const layers = await offerOf(a, rawOffer([{ kind: 'video', rids: ['q', 'h', 'f', 'x'], ssrcs: [] }]));
    assert.equal(layers.code, 'too_large');
    assert.match(layers.message, /4 simulcast layers/);
    const ssrcs = await offerOf(a, rawOffer([{ kind: 'video', ssrcs: [1, 2, 3, 4, 5, 6, 7] }]));
    assert.equal(ssrcs.code, 'too_large');
    assert.match(ssrcs.message, /7 SSRCs/);
    const bundleOnly = await offerOf(a, rawOffer([{ kind: 'audio' }, { kind: 'video', port: 0, bundleOnly: true }]));
    assert.equal(bundleOnly.type, 'answer', JSON.stringify(bundleOnly));
    assert.equal(Object.keys(bundleOnly.tracks).length, 2, 'str0m publishes a port-0 bundle-only m-line: it is a track');
    const rejected = await offerOf(a, rawOffer([{ kind: 'audio' }, { kind: 'video' }, { kind: 'video', port: 0, bundled: false }]));
    assert.equal(rejected.type, 'answer', 'a port-0 m-line outside BUNDLE is rejected, not a track');
    assert.equal(Object.keys(rejected.tracks).length, 2);
    const over = await offerOf(b, rawOffer([{ kind: 'audio' }, { kind: 'video' }]));
    assert.equal(over.code, 'room_full', JSON.stringify(over));
    assert.match(over.message, /4 tracks; its limit is 3/);
    const fits = await offerOf(b, rawOffer([{ kind: 'audio' }]));
    assert.equal(fits.type, 'answer');
    a.ws.close();
    b.ws.close();
  });
});

/** Sends `sdp` as an offer and resolves to the answer or error that follows. */
async function offerOf(c, sdp) {
  const seen = c.messages.length;
  c.send({ type: 'offer', sdp });
  return waitFor(() => c.messages.slice(seen).find((m) => m.type === 'answer' || m.type === 'error')
    || Promise.reject(new Error('no reply')), 10000, 'a reply to the offer', 5);
}

describe('offers and the messages they cause', () => {
  // Requirement: offers are rate-limited on their own: beyond max_offers_per_second (default
  // 5, bursts of as many) each gets `rate_limited` with `refused: "offer"` instead of an
  // answer, counted by limit; the budget is the participant's, so a resume does not refill it.
  it('limits offers per second', async () => {
    const server = await startServer(makeTempDir());
    try {
      const c = await joined(server, 'offers');
      const sdp = rawOffer([{ kind: 'audio' }]);
      for (let i = 0; i < 12; i++) c.send({ type: 'offer', sdp });
      await waitFor(() => c.messages.filter((m) => m.type === 'answer' || m.type === 'error').length >= 12
        || Promise.reject(new Error(`${c.messages.length} replies`)), 10000, 'a reply to each offer');
      const answers = c.messages.filter((m) => m.type === 'answer').length;
      const limited = c.messages.filter((m) => m.type === 'error' && m.code === 'rate_limited' && /offers per second/.test(m.message));
      assert.ok(answers <= 6, `${answers} answers to 12 offers at once`);
      assert.equal(answers + limited.length, 12, 'every refused offer is told');
      assert.ok(limited.every((m) => m.refused === 'offer'), `refusals name the offer: ${JSON.stringify(limited[0])}`);
      // A new connection (resume) does not bring a fresh budget: the participant keeps its own.
      const resumed = await client(server);
      resumed.send({ type: 'resume', resume_token: c.messages[0].resume_token });
      assert.equal((await resumed.next('joined')).type, 'joined');
      for (let i = 0; i < 5; i++) resumed.send({ type: 'offer', sdp });
      await waitFor(() => resumed.messages.filter((m) => m.type === 'answer' || m.type === 'error').length >= 5
        || Promise.reject(new Error(`${resumed.messages.length} replies`)), 10000, 'a reply to each offer after resuming');
      const afterResume = resumed.messages.filter((m) => m.type === 'answer').length;
      assert.ok(afterResume <= 3, `${afterResume} of 5 offers answered right after a resume (budget refilled)`);
      const refusedTotal = limited.length + 5 - afterResume;
      const text = await (await fetch(server.metricsUrl)).text();
      assert.match(text, new RegExp(`sfu_limits_hit_total\\{limit="offers_per_second"\\} ${refusedTotal}\\b`));
      resumed.ws.close();
    } finally {
      await server.stop();
    }
  });

  // Requirement: a server offer is never larger than a client may answer (max_sdp_bytes):
  // the tracks that do not fit are left out, and the subscriber is told which.
  it('offers no more tracks than an answer may carry', async () => {
    const tmp = makeTempDir();
    const config = path.join(tmp, 'offer-size.toml');
    fs.writeFileSync(config, ['max_sdp_bytes = 8192', 'max_offers_per_second = 100', ''].join('\n'));
    const server = await startServer(tmp, { extraArgs: ['--config', config] });
    try {
      const publisher = await joined(server, 'size');
      const published = await offerOf(publisher, rawOffer(Array.from({ length: 8 }, (_, i) => ({ kind: i % 2 ? 'video' : 'audio' }))));
      assert.equal(published.type, 'answer', JSON.stringify(published));
      const trackIds = Object.values(published.tracks);
      assert.equal(trackIds.length, 8);
      const viewer = await joined(server, 'size');
      const offer = await viewer.next('offer');
      assert.ok(offer.sdp.length <= 8192 * 3 / 4, `a server offer of ${offer.sdp.length} bytes`);
      const notOffered = await waitFor(() => viewer.messages.find((m) => m.type === 'error' && m.code === 'too_large')
        || Promise.reject(new Error('no too_large')), 5000, 'the subscriber told what was left out');
      const offered = Object.values(offer.tracks);
      assert.ok(offered.length > 0 && offered.length < 8, `${offered.length} tracks offered`);
      for (const id of trackIds) {
        assert.ok(offered.includes(id) !== notOffered.message.includes(id), `${id} is either offered or named as left out`);
      }
      const text = await (await fetch(server.metricsUrl)).text();
      assert.match(text, /sfu_limits_hit_total\{limit="server_offer_size"\} 1\b/);
      publisher.ws.close();
      viewer.ws.close();
    } finally {
      await server.stop();
    }
  });

  // Requirement: a burst of announcements the server generates (a publisher adding and
  // removing tracks in a loop) never removes another participant: what its session cannot
  // take yet waits, coalesced, and it ends up told exactly the tracks that exist.
  it('never evicts a participant for a burst the server made', { timeout: 90000 }, async () => {
    const TRACKS = 100;
    const tmp = makeTempDir();
    const config = path.join(tmp, 'burst.toml');
    fs.writeFileSync(config, ['max_offers_per_second = 100000', 'max_messages_per_second = 100000', 'ice_connect_timeout_secs = 120',
      `max_tracks_per_participant = ${TRACKS}`, 'max_sdp_bytes = 65536', ''].join('\n'));
    const server = await startServer(tmp, { extraArgs: ['--config', config] });
    try {
      const publisher = await joined(server, 'burst');
      const [host, port] = server.httpAddr.split(':');
      const viewer = spawn('python3', [PAUSED_READER, host, port, 'burst', '9', '30']);
      const lines = [];
      let stderr = '';
      viewer.stdout.on('data', (d) => lines.push(...d.toString().split('\n').filter(Boolean)));
      viewer.stderr.on('data', (d) => { stderr += d; });
      const exited = new Promise((resolve) => viewer.once('exit', resolve));
      await waitFor(() => lines.length > 0 || Promise.reject(new Error(stderr || 'not joined')), 10000, 'the paused viewer joining');
      const all = rawOffer(Array.from({ length: TRACKS }, (_, i) => ({ kind: i % 2 ? 'video' : 'audio' })));
      const none = rawOffer(Array.from({ length: TRACKS }, (_, i) => ({ kind: i % 2 ? 'video' : 'audio', direction: 'inactive' })));
      const started = Date.now();
      let last;
      let cycles = 0;
      for (; cycles < 700 && Date.now() - started < 8000; cycles++) {
        assert.equal((await offerOf(publisher, all)).type, 'answer');
        assert.equal((await offerOf(publisher, none)).type, 'answer');
      }
      last = await offerOf(publisher, all);
      assert.equal(last.type, 'answer');
      console.log(`publisher cycled ${cycles} times in ${Date.now() - started} ms`);
      await exited;
      const result = JSON.parse(lines.at(-1));
      console.log(`paused viewer: ${JSON.stringify({ ...result, tracks: result.tracks.length })}`);
      assert.equal(result.leave, null, `the viewer was sent away (${result.leave}) after ${result.messages} messages`);
      assert.deepEqual(result.tracks, Object.values(last.tracks).sort(), 'the viewer knows exactly the tracks that exist');
      publisher.ws.close();
    } finally {
      await server.stop();
    }
  });
});

describe('participants that never negotiate', () => {
  // Requirement: the ICE connect deadline starts at the join: sockets that join and never
  // negotiate are removed after ice_connect_timeout_secs, freeing their seats.
  it('lose their seats after the connect timeout', { timeout: 30000 }, async () => {
    const tmp = makeTempDir();
    const config = path.join(tmp, 'idle.toml');
    fs.writeFileSync(config, ['max_participants_per_room = 3', 'ice_connect_timeout_secs = 2', ''].join('\n'));
    const server = await startServer(tmp, { extraArgs: ['--config', config] });
    try {
      const idle = [await joined(server, 'seats'), await joined(server, 'seats'), await joined(server, 'seats')];
      for (const c of idle) assert.equal(c.messages[0].type, 'joined');
      const full = await joined(server, 'seats');
      assert.equal(full.messages[0].code, 'room_full');
      await waitFor(() => idle.every((c) => c.messages.some((m) => m.type === 'leave' && m.reason === 'timeout'))
        || Promise.reject(new Error('not all told')), 8000, 'every idle participant told `leave` `timeout`');
      const later = await joined(server, 'seats');
      assert.equal(later.messages[0].type, 'joined', 'a seat is free again');
      later.ws.close();
    } finally {
      await server.stop();
    }
  });
});

describe('slow and concurrent clients', () => {
  let server;
  const clients = [];
  before(async () => {
    const tmp = makeTempDir();
    const config = path.join(tmp, 'slow.toml');
    fs.writeFileSync(config, ['max_messages_per_second = 100000', 'resume_grace_secs = 0', 'max_pending_joins = 1', ''].join('\n'));
    server = await startServer(tmp, { extraArgs: ['--config', config] });
  });
  after(async () => {
    for (const c of clients) c.ws.close();
    if (server) await server.stop();
  });

  // Requirement: a client that stops reading while its replies pile up is dropped within the
  // send timeout (counted, logged), its room is told it left, and the others keep being served.
  it('drops a client that stops reading', { timeout: 60000 }, async () => {
    const b = await joined(server, 'slow');
    clients.push(b);
    const before = (await getHealth(server.baseUrl)).counters.slow_clients_dropped;
    const [host, port] = server.httpAddr.split(':');
    const run = new Promise((resolve, reject) => execFile('python3', [SLOW_READER, host, port, 'slow', '40'],
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(JSON.parse(stdout)))));
    const slowId = await waitFor(() => b.messages.find((m) => m.type === 'participant_joined')?.participant.id,
      10000, 'the slow client joining');
    const result = await run;
    console.log(`slow reader: ${JSON.stringify(result)}`);
    assert.equal(result.dropped, true, 'the server dropped the connection');
    assert.ok(result.seconds < 35, `dropped after ${result.seconds} s`);
    assert.ok(result.pings_sent > 100, `${result.pings_sent} pings`);
    await waitFor(() => b.messages.some((m) => m.type === 'participant_left' && m.participant_id === slowId)
      || Promise.reject(new Error('no participant_left')), 10000, 'the room told the slow client left');
    const health = await getHealth(server.baseUrl);
    assert.equal(health.counters.slow_clients_dropped, before + 1, JSON.stringify(health.counters));
    assert.match(fs.readFileSync(server.logPath, 'utf8'), /stopped reading/);
    b.send({ type: 'ping', ts: 7 });
    await waitFor(() => b.messages.some((m) => m.type === 'pong' && m.ts === 7) || Promise.reject(new Error('no pong')), 3000, 'the other client still served');
  });

  // Requirement: joins beyond max_pending_joins in progress at once get `rate_limited`; the
  // others join, and once they are done the next join is admitted.
  it('refuses joins over the in-progress limit', { timeout: 60000 }, async () => {
    const burst = await Promise.all(Array.from({ length: 60 }, (_, i) => joined(server, `burst-${i}`)));
    clients.push(...burst);
    const first = burst.map((c) => c.messages[0]);
    const limited = first.filter((m) => m.type === 'error');
    for (const m of limited) {
      assert.equal(m.code, 'rate_limited', JSON.stringify(m));
      assert.match(m.message, /joins in progress/);
    }
    assert.ok(limited.length > 0, 'some of 60 simultaneous joins were over the limit of 1 in progress');
    assert.ok(first.some((m) => m.type === 'joined'), 'some joined');
    console.log(`60 simultaneous joins, 1 allowed in progress: ${60 - limited.length} joined, ${limited.length} rate_limited`);
    const later = await joined(server, 'burst-later');
    clients.push(later);
    assert.equal(later.messages[0].type, 'joined', JSON.stringify(later.messages[0]));
  });
});

describe('connections waiting to join', () => {
  let server;
  const sockets = [];
  before(async () => {
    const tmp = makeTempDir();
    const config = path.join(tmp, 'unjoined.toml');
    fs.writeFileSync(config, 'max_unjoined_connections = 3\n');
    server = await startServer(tmp, { extraArgs: ['--config', config] });
  });
  after(async () => {
    for (const ws of sockets) ws.terminate();
    if (server) await server.stop();
  });

  /** A signaling WebSocket: resolves `open`, or the HTTP status it was refused with. */
  function open() {
    const ws = new WebSocket(server.wsUrl);
    sockets.push(ws);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve({ ws, status: 101 }));
      ws.once('unexpected-response', (_req, res) => resolve({ ws, status: res.statusCode }));
      ws.once('error', reject);
    });
  }

  // Requirement: connections that have not joined are capped (max_unjoined_connections): more
  // are refused with HTTP 503 and counted, and one that joins frees its place.
  it('refuses connections over the cap until one joins', async () => {
    const before = (await getHealth(server.baseUrl)).counters.ws_refused;
    const idle = [await open(), await open(), await open()];
    assert.deepEqual(idle.map((c) => c.status), [101, 101, 101]);
    const refused = await open();
    assert.equal(refused.status, 503);
    assert.equal((await getHealth(server.baseUrl)).counters.ws_refused, before + 1);
    const joiner = idle[0].ws;
    const reply = new Promise((resolve) => joiner.once('message', (data) => resolve(JSON.parse(data.toString()))));
    joiner.send(JSON.stringify({ type: 'join', room: 'unjoined', name: 'n' }));
    assert.equal((await reply).type, 'joined');
    const admitted = await open();
    assert.equal(admitted.status, 101, 'a joined connection did not free its place');
  });
});

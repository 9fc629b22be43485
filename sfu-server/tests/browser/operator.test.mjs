// Operators during a real call: Prometheus metrics (node and per-room series, parsed with a
// Prometheus text parser; a closed room's series disappear) and the admin REST API (every
// endpoint, credentials, and kick / mute / close taking effect on the live call).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import parsePrometheus from 'parse-prometheus-text-format';
import fs from 'node:fs';
import path from 'node:path';
import {
  makeTempDir, startServer, launchBrowser, openParticipant, closeParticipant,
  waitFor, withDiagnostics, sleep, REPO_ROOT,
} from './lib.mjs';

const ARTIFACTS = path.join(REPO_ROOT, 'target', 'test-artifacts');

const TOKEN = 'operator-test-token-0123';

/** The families of a /metrics scrape, by name. */
async function scrape(server) {
  const res = await fetch(server.metricsUrl);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /text\/plain/);
  return new Map(parsePrometheus(await res.text()).map((f) => [f.name, f]));
}

/** The value of a family's series whose labels include `labels`, or undefined. */
function valueOf(families, name, labels = {}) {
  const series = families.get(name)?.metrics.find((m) =>
    Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return series ? Number(series.value ?? series.count) : undefined;
}

async function api(server, method, path, { token, body } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${server.baseUrl}${path}`, {
    method, headers, body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)),
  });
  return { status: res.status, json: await res.json() };
}

describe('operators: metrics and admin API during a call', () => {
  let server;
  let browser;
  let A, B, C;
  const state = () => ({ server, participants: [A, B, C] });
  const check = (name, fn, timeout = 60000) => it(name, { timeout }, () => withDiagnostics(state, fn));

  before(() => withDiagnostics(state, async () => {
    const tmp = makeTempDir();
    server = await startServer(tmp, { extraArgs: ['--admin-token', TOKEN] });
    browser = await launchBrowser(tmp);
    A = await openParticipant(browser, server.baseUrl, { room: 'ops', name: 'A' });
    B = await openParticipant(browser, server.baseUrl, { room: 'ops', name: 'B', video: false });
    C = await openParticipant(browser, server.baseUrl, { room: 'ops-2', name: 'C', audio: false, video: false });
  }), { timeout: 90000 });

  after(async () => {
    for (const p of [A, B, C]) await closeParticipant(p);
    if (browser) await browser.close().catch(() => {});
    if (server) await server.stop();
  });

  // Requirement: without the token, or with a wrong one, every endpoint answers 401 with a JSON error.
  check('the admin API refuses requests without the right token', async () => {
    const endpoints = [
      ['GET', '/api/rooms'], ['GET', '/api/rooms/ops'], ['DELETE', '/api/rooms/ops'],
      ['POST', `/api/rooms/ops/participants/${B.participantId}/kick`],
      ['POST', '/api/rooms/ops/tracks/TR_1/mute'], ['GET', '/api/events'],
    ];
    for (const [method, path] of endpoints) {
      for (const token of [undefined, 'wrong-token-wrong-token']) {
        const r = await api(server, method, path, { token, body: method === 'POST' ? { muted: true } : undefined });
        assert.equal(r.status, 401, `${method} ${path} with ${token ?? 'no token'}`);
        assert.equal(r.json.error.code, 'unauthorized');
      }
    }
  });

  // Requirement: the room list and room detail show the live call: participants, tracks with
  // arriving layers and bitrates, and consumers.
  check('rooms are listed with their participants, tracks and bitrates', async () => {
    const list = await waitFor(async () => {
      const r = await api(server, 'GET', '/api/rooms', { token: TOKEN });
      const ops = r.json.find((room) => room.room === 'ops');
      if (!(ops?.participants === 2 && ops.ingress_bps > 0)) throw new Error(JSON.stringify(r.json));
      return r.json;
    }, 30000, 'room ops with 2 participants and media');
    assert.ok(list.some((room) => room.room === 'ops-2'));
    const detail = await waitFor(async () => {
      const r = await api(server, 'GET', '/api/rooms/ops', { token: TOKEN });
      const published = r.json.participants?.find((p) => p.id === A.participantId)?.published ?? [];
      if (!(published.length === 2 && published.every((t) => t.layers.some((l) => l.active && l.bitrate_bps > 0)))) {
        throw new Error(JSON.stringify(published));
      }
      return r;
    }, 15000, 'A\'s audio and video to arrive with a measured bitrate');
    assert.equal(detail.status, 200);
    const a = detail.json.participants.find((p) => p.id === A.participantId);
    assert.equal(a.name, 'A');
    assert.equal(a.connected, true);
    assert.deepEqual(a.published.map((t) => t.kind).sort(), ['audio', 'video']);
    assert.ok(a.published.every((t) => t.layers.some((l) => l.active && l.bitrate_bps > 0)), JSON.stringify(a.published));
    const b = detail.json.participants.find((p) => p.id === B.participantId);
    assert.equal(b.consumers.length, 2, 'B receives A\'s audio and video');
    const noSecret = await api(server, 'POST', '/api/tokens', { token: TOKEN, body: { room: 'ops', identity: 'x' } });
    assert.equal(noSecret.status, 409, 'no auth secret, no tokens');
    const missing = await api(server, 'GET', '/api/rooms/nope', { token: TOKEN });
    assert.equal(missing.status, 404);
    assert.equal(missing.json.error.code, 'not_found');
  });

  // Requirement: an operator opening /dashboard sees the room live with its participants and
  // non-zero bitrates, and its room page per participant and per layer; without the token
  // the page shows nothing but the token form.
  check('the dashboard shows the live room', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${server.baseUrl}/dashboard`);
      await page.waitForSelector('#token-form:not([hidden])', { timeout: 10000 });
      assert.equal(await page.locator('#rooms tbody tr').count(), 0, 'no data without the token');
      await page.goto(`${server.baseUrl}/dashboard?token=${TOKEN}`);
      const row = page.locator('#rooms tr[data-room="ops"]');
      await row.waitFor({ timeout: 15000 });
      await waitFor(async () => {
        const cells = await row.locator('td').allTextContents();
        if (!(cells[1] === '2' && /[1-9]/.test(cells[4]) && !cells[4].startsWith('0 '))) throw new Error(`row ${cells}`);
        return true;
      }, 15000, 'the ops row with 2 participants and an ingress bitrate');
      await row.click();
      await waitFor(async () => {
        const cards = await page.locator('#participants .participant').count();
        const rates = await page.locator('#participants tr.layer td.bitrate').allTextContents();
        const received = await page.locator('#participants tr.consumer td.bitrate').allTextContents();
        if (cards !== 2 || rates.length < 2 || !rates.every((r) => /[1-9]/.test(r))) throw new Error(`cards ${cards}, layer rates ${rates}`);
        if (!received.some((r) => /[1-9]/.test(r))) throw new Error(`consumer rates ${received}`);
        return true;
      }, 20000, 'the room page with both participants and non-zero layer bitrates');
      await sleep(3000); // a few seconds of history in the plots
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-room.png'), fullPage: true });
    } finally {
      await page.close();
    }
  });

  // Requirement: /metrics has node series and per-room series with plausible values.
  check('metrics carry node and per-room series', async () => {
    const families = await waitFor(async () => {
      const f = await scrape(server);
      if (!(valueOf(f, 'sfu_room_forwarded_packets_total', { room: 'ops' }) > 0)) throw new Error('no forwarded packets for ops yet');
      return f;
    }, 20000, 'per-room forwarded packets');
    assert.equal(valueOf(families, 'sfu_room_participants', { room: 'ops' }), 2);
    assert.equal(valueOf(families, 'sfu_room_participants', { room: 'ops-2' }), 1);
    assert.equal(valueOf(families, 'sfu_room_producers', { room: 'ops' }), 3);
    assert.ok(valueOf(families, 'sfu_room_ingress_bits_per_second', { room: 'ops' }) > 10000);
    assert.equal(valueOf(families, 'sfu_rooms'), 2);
    assert.equal(valueOf(families, 'sfu_participants'), 3);
    assert.ok(valueOf(families, 'sfu_rtp_forwarded_total') > 0);
    assert.ok(valueOf(families, 'sfu_udp_received_total') > 0);
    assert.ok(valueOf(families, 'process_resident_memory_bytes') > 1e6);
    assert.ok(valueOf(families, 'process_cpu_seconds_total') > 0);
    assert.ok(valueOf(families, 'sfu_join_seconds') >= 3, 'one join latency sample per participant');
    assert.ok(valueOf(families, 'sfu_forwarding_seconds') > 0, 'forwarding latency samples');
  });

  // Requirement: muting a track from the API stops its media for everyone and tells them;
  // unmuting brings it back.
  check('an operator mutes and unmutes a track', async () => {
    const detail = await api(server, 'GET', '/api/rooms/ops', { token: TOKEN });
    const audio = detail.json.participants.find((p) => p.id === A.participantId).published.find((t) => t.kind === 'audio');
    const audioPackets = async () => (await B.inboundStats()).find((s) => s.kind === 'audio' && s.trackId === audio.id)?.packetsReceived ?? 0;
    const bad = await api(server, 'POST', `/api/rooms/ops/tracks/${audio.id}/mute`, { token: TOKEN, body: 'not json' });
    assert.equal(bad.status, 400);
    const unknown = await api(server, 'POST', '/api/rooms/ops/tracks/TR_999/mute', { token: TOKEN, body: { muted: true } });
    assert.equal(unknown.status, 404);
    const muted = await api(server, 'POST', `/api/rooms/ops/tracks/${audio.id}/mute`, { token: TOKEN, body: { muted: true } });
    assert.equal(muted.status, 200);
    await waitFor(async () => {
      const m = (await B.messages()).filter((x) => x.type === 'track_muted' && x.track_id === audio.id).at(-1);
      if (m?.muted !== true) throw new Error('no track_muted true yet');
      return true;
    }, 5000, 'B to be told the audio is muted');
    await sleep(500);
    const before = await audioPackets();
    await sleep(2000);
    assert.equal(await audioPackets(), before, 'no audio reaches B while muted');
    await api(server, 'POST', `/api/rooms/ops/tracks/${audio.id}/mute`, { token: TOKEN, body: { muted: false } });
    await waitFor(async () => {
      if (!((await audioPackets()) > before)) throw new Error('audio still stopped');
      return true;
    }, 10000, 'audio to flow again after unmute');
  });

  // Requirement: a kicked participant is told `leave` with reason `kicked` and leaves the room.
  check('an operator kicks a participant', async () => {
    const unknown = await api(server, 'POST', '/api/rooms/ops/participants/PA_999/kick', { token: TOKEN });
    assert.equal(unknown.status, 404);
    const kicked = await api(server, 'POST', `/api/rooms/ops/participants/${B.participantId}/kick`, { token: TOKEN });
    assert.equal(kicked.status, 200);
    await waitFor(async () => {
      const leave = (await B.messages()).find((m) => m.type === 'leave');
      if (leave?.reason !== 'kicked') throw new Error(`leave ${JSON.stringify(leave)}`);
      return true;
    }, 5000, 'B to receive leave kicked');
    await waitFor(async () => {
      const left = (await A.messages()).some((m) => m.type === 'participant_left' && m.participant_id === B.participantId);
      const room = (await api(server, 'GET', '/api/rooms/ops', { token: TOKEN })).json;
      if (!left || room.participants.length !== 1) throw new Error('B still there');
      return true;
    }, 5000, 'the room to lose B');
  });

  // Requirement: closing a room tells everyone `room_closed`; the room and its series disappear.
  check('an operator closes a room and its metrics series go away', async () => {
    const closed = await api(server, 'DELETE', '/api/rooms/ops', { token: TOKEN });
    assert.equal(closed.status, 200);
    await waitFor(async () => {
      const leave = (await A.messages()).find((m) => m.type === 'leave');
      if (leave?.reason !== 'room_closed') throw new Error(`leave ${JSON.stringify(leave)}`);
      return true;
    }, 5000, 'A to receive leave room_closed');
    await waitFor(async () => {
      const rooms = (await api(server, 'GET', '/api/rooms', { token: TOKEN })).json.map((r) => r.room);
      const families = await scrape(server);
      if (rooms.includes('ops')) throw new Error(`rooms ${rooms}`);
      if (valueOf(families, 'sfu_room_participants', { room: 'ops' }) !== undefined) throw new Error('ops series still exported');
      if (valueOf(families, 'sfu_room_participants', { room: 'ops-2' }) !== 1) throw new Error('ops-2 series missing');
      return true;
    }, 5000, 'room ops to be gone from the API and the metrics');
    const again = await api(server, 'DELETE', '/api/rooms/ops', { token: TOKEN });
    assert.equal(again.status, 404);
  });
});

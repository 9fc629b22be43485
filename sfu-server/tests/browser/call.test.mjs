// End-to-end call in real Chromium: media, room isolation, data channel relay and leave.
// Three participants A, B, C publish fake camera+mic in room r1; D publishes alone in r2.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  makeTempDir, startServer, launchBrowser, closeBrowser, openParticipant, closeParticipant, getHealth,
  waitFor, withDiagnostics, expectMediaFrom, publishedTracksOf, sleep,
} from './lib.mjs';

describe('call: three participants in r1, one in r2', () => {
  let server;
  let browser;
  let A, B, C, D;
  const state = () => ({ server, participants: [A, B, C, D] });
  const check = (name, fn, timeout = 40000) => it(name, { timeout }, () => withDiagnostics(state, fn));

  before(() => withDiagnostics(state, async () => {
    const tmp = makeTempDir();
    server = await startServer(tmp);
    browser = await launchBrowser(tmp);
    A = await openParticipant(browser, server.baseUrl, { room: 'r1', name: 'A' });
    B = await openParticipant(browser, server.baseUrl, { room: 'r1', name: 'B' });
    C = await openParticipant(browser, server.baseUrl, { room: 'r1', name: 'C' });
    D = await openParticipant(browser, server.baseUrl, { room: 'r2', name: 'D' });
  }), { timeout: 90000 });

  after(async () => {
    for (const p of [A, B, C, D]) await closeParticipant(p);
    await closeBrowser(browser);
    if (server) await server.stop();
  });

  // Requirement: each participant decodes video and receives audio from every other publisher in its room.
  check('A, B and C each decode video and receive audio from both others', async () => {
    await Promise.all([
      expectMediaFrom(A, [B, C]),
      expectMediaFrom(B, [A, C]),
      expectMediaFrom(C, [A, B]),
    ]);
  });

  // Requirement: /healthz reports the live rooms and participants.
  check('/healthz counts 2 rooms and 4 participants', async () => {
    const health = await getHealth(server.baseUrl);
    assert.equal(health.status, 'ok');
    assert.equal(health.rooms, 2, `healthz: ${JSON.stringify(health)}`);
    assert.equal(health.participants, 4, `healthz: ${JSON.stringify(health)}`);
  });

  // Requirement: rooms are isolated — nothing of r1 reaches D in r2, and D does not show up in r1.
  check('D in r2 gets no participant, track or media from r1', async () => {
    const r1Ids = new Set([A.participantId, B.participantId, C.participantId]);
    // D is really connected and publishing, so "receives nothing" is not just "is not connected".
    await waitFor(async () => (await D.outboundStats()).some((s) => s.kind === 'video' && s.packetsSent > 0),
      15000, 'D to send video packets to the server');

    const participants = await D.participants();
    assert.deepEqual(Object.keys(participants), [], `D sees participants ${JSON.stringify(participants)}`);
    const remote = await D.remoteTracks();
    assert.deepEqual(remote, [], `D received remote tracks ${JSON.stringify(remote)}`);
    const inbound = await D.inboundStats();
    const r1Inbound = inbound.filter((s) => r1Ids.has(s.participantId) || s.packetsReceived > 0);
    assert.deepEqual(r1Inbound, [], `D has inbound media ${JSON.stringify(r1Inbound)}`);
    const leaked = (await D.messages()).filter((m) => participantIdsIn(m).some((id) => r1Ids.has(id)));
    assert.deepEqual(leaked, [], 'D got server messages about r1 participants');

    for (const p of [A, B, C]) {
      assert.ok(!(D.participantId in await p.participants()), `${p.name} lists D from room r2`);
    }
  });

  // Requirement: a text sent on `reliable` reaches the other room members as {from: sender id, data}, and no one else.
  check('reliable data message from A reaches B and C with from = A, not D', async () => {
    await expectDataRelayed('reliable');
  });

  // Requirement: same relay on the unordered, no-retransmit `lossy` channel.
  check('lossy data message from A reaches B and C with from = A, not D', async () => {
    await expectDataRelayed('lossy');
  });

  // Requirement: when a participant leaves, the others are told, its tracks end, and the rest of the call goes on.
  check('when C leaves, A and B see participant_left, C\'s tracks end, A<->B media keeps flowing', async () => {
    const cTracksAtA = await publishedTracksOf(A, C);
    const cTracksAtB = await publishedTracksOf(B, C);
    for (const [viewer, cTracks] of [[A, cTracksAtA], [B, cTracksAtB]]) {
      const live = (await viewer.remoteTracks()).filter((t) => t.participantId === C.participantId && t.readyState === 'live');
      assert.deepEqual(live.map((t) => t.trackId).sort(), [cTracks.videoTrackId, cTracks.audioTrackId].sort(),
        `${viewer.name}'s live remote tracks from C before C leaves`);
    }
    await C.sfu(() => window.sfu.leave());
    assert.equal(await C.sfu(() => window.sfu.state), 'left');

    await Promise.all([[A, cTracksAtA], [B, cTracksAtB]].map(([viewer, cTracks]) => waitFor(async () => {
      const left = (await viewer.messages()).some((m) => m.type === 'participant_left' && m.participant_id === C.participantId);
      if (!left) throw new Error('no participant_left for C yet');
      if (C.participantId in await viewer.participants()) throw new Error('C still in sfu.participants');
      const live = (await viewer.remoteTracks()).filter((t) => t.participantId === C.participantId && t.readyState !== 'ended');
      if (live.length) throw new Error(`C's tracks still live: ${JSON.stringify(live)}`);
      const ids = new Set([cTracks.videoTrackId, cTracks.audioTrackId]);
      const before = (await viewer.inboundStats()).filter((s) => ids.has(s.trackId));
      await sleep(1500);
      const after = (await viewer.inboundStats()).filter((s) => ids.has(s.trackId));
      for (const s of after) {
        const b = before.find((x) => x.ssrc === s.ssrc);
        if (!b || s.packetsReceived > b.packetsReceived) {
          throw new Error(`still receiving C's ${s.kind} track ${s.trackId}: packetsReceived ${b?.packetsReceived} -> ${s.packetsReceived}`);
        }
      }
      return true;
    }, 10000, `${viewer.name} to see C leave and C's tracks end`)));

    await waitFor(async () => (await getHealth(server.baseUrl)).participants === 3, 5000, '/healthz participants to drop to 3');
    await Promise.all([expectMediaFrom(A, [B], { firstMediaMs: 5000 }), expectMediaFrom(B, [A], { firstMediaMs: 5000 })]);
  });

  /** A sends a unique text on `label`; B and C must get it from A, A itself and D must not. */
  async function expectDataRelayed(label) {
    for (const p of [A, B, C, D]) {
      await waitFor(() => p.sfu(() => window.sfu.channelsOpen()), 15000, `${p.name}'s data channels to open`);
    }
    const text = `${label} hello from A ${Math.random().toString(36).slice(2)}`;
    assert.equal(await A.sfu(([l, t]) => window.sfu.sendData(l, t), [label, text]), true, `A: sendData(${label}) returned false`);

    for (const p of [B, C]) {
      await waitFor(async () => {
        const got = (await p.dataMessages()).filter((m) => m.data === text);
        if (got.length !== 1) throw new Error(`got ${got.length} copies`);
        assert.deepEqual(got[0], { label, from: A.participantId, data: text });
        return true;
      }, 5000, `${p.name} to receive A's ${label} message exactly once`);
    }
    await sleep(1000);
    for (const p of [A, D]) {
      const got = (await p.dataMessages()).filter((m) => m.data === text);
      assert.deepEqual(got, [], `${p.name} must not receive A's ${label} message`);
    }
  }
});

/** Every participant id a server message mentions (participant_id fields, participant / participants objects). */
function participantIdsIn(value, ids = []) {
  if (Array.isArray(value)) {
    for (const v of value) participantIdsIn(v, ids);
  } else if (value && typeof value === 'object') {
    for (const [key, v] of Object.entries(value)) {
      if (key === 'participant_id') ids.push(v);
      if (key === 'participant' && v) ids.push(v.id);
      if (key === 'participants' && Array.isArray(v)) ids.push(...v.map((p) => p && p.id));
      participantIdsIn(v, ids);
    }
  }
  return ids;
}

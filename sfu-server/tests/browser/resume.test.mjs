// Resuming: a participant whose signaling connection drops (no `leave`) stays in the room for
// the grace period and is taken back by a new connection with its `resume_token`; one that does
// not come back is removed when the grace period ends. (Raw WebSocket clients; grace from a config file.)

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import {
  makeTempDir, startServer, waitFor, sleep, launchBrowser, openParticipant, closeParticipant, withDiagnostics,
} from './lib.mjs';

const GRACE_SECS = 3;

async function connect(server) {
  const ws = new WebSocket(server.wsUrl);
  const messages = [];
  ws.on('message', (data) => messages.push(JSON.parse(data.toString())));
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const reply = () => waitFor(() => messages[0] || Promise.reject(new Error('no reply')), 5000, 'first reply');
  return { ws, messages, reply, send: (m) => ws.send(JSON.stringify(m)) };
}

describe('resume', () => {
  let server;
  let observer;
  before(async () => {
    const tmp = makeTempDir();
    const config = path.join(tmp, 'resume.toml');
    fs.writeFileSync(config, `resume_grace_secs = ${GRACE_SECS}\n`);
    server = await startServer(tmp, { extraArgs: ['--config', config] });
    observer = await connect(server);
    observer.send({ type: 'join', room: 'res', name: 'observer' });
    await observer.reply();
  });
  after(async () => {
    observer?.ws.close();
    if (server) await server.stop();
  });

  const leftIds = () => observer.messages.filter((m) => m.type === 'participant_left').map((m) => m.participant_id);

  // Requirement: a dropped connection resumed within the grace period keeps its participant id,
  // gets `joined` again with the room's state, and the others never see it leave.
  it('takes back a participant with its resume token', async () => {
    const first = await connect(server);
    first.send({ type: 'join', room: 'res', name: 'mover' });
    const joined = await first.reply();
    assert.equal(joined.type, 'joined');
    assert.match(joined.resume_token, /^[0-9a-f]{32}$/);
    first.ws.terminate(); // the connection is gone, no `leave`
    await sleep(500);
    const second = await connect(server);
    second.send({ type: 'resume', resume_token: joined.resume_token });
    const resumed = await second.reply();
    assert.equal(resumed.type, 'joined', JSON.stringify(resumed));
    assert.equal(resumed.participant_id, joined.participant_id);
    assert.equal(resumed.room, 'res');
    assert.ok(resumed.participants.some((p) => p.name === 'observer'), 'the room state comes again');
    assert.match(resumed.resume_token, /^[0-9a-f]{32}$/);
    assert.notEqual(resumed.resume_token, joined.resume_token, 'a new resume token each resume');
    const replay = await connect(server);
    replay.send({ type: 'resume', resume_token: joined.resume_token });
    assert.equal((await replay.reply()).code, 'not_found', 'the old resume token no longer works');
    await sleep((GRACE_SECS + 1) * 1000);
    assert.ok(!leftIds().includes(joined.participant_id), 'the others never saw it leave');
    second.send({ type: 'ping', ts: 7 });
    await waitFor(() => second.messages.some((m) => m.type === 'pong') || Promise.reject(new Error('no pong')), 3000, 'pong on the resumed session');
    second.send({ type: 'leave' });
    await waitFor(() => leftIds().includes(joined.participant_id) || Promise.reject(new Error('not left')), 3000, 'leave after resume');
  });

  // Requirement: a resume while the old connection is still open (the server has not yet seen
  // it die, or the client opened the new one first) keeps the participant: the old connection
  // gets `leave` `replaced` and closes, the new one carries on, and the others see no one leave.
  it('takes back a participant whose old connection is still open', async () => {
    const first = await connect(server);
    first.send({ type: 'join', room: 'res', name: 'twice' });
    const joined = await first.reply();
    const firstClosed = new Promise((resolve) => first.ws.once('close', resolve));
    const second = await connect(server);
    second.send({ type: 'resume', resume_token: joined.resume_token });
    const resumed = await second.reply();
    assert.equal(resumed.type, 'joined', JSON.stringify(resumed));
    assert.equal(resumed.participant_id, joined.participant_id);
    await waitFor(() => first.messages.some((m) => m.type === 'leave') || Promise.reject(new Error('no leave')), 3000, 'leave on the old connection');
    assert.deepEqual(first.messages.find((m) => m.type === 'leave'), { type: 'leave', reason: 'replaced' });
    await firstClosed;
    await sleep((GRACE_SECS + 1) * 1000);
    assert.ok(!leftIds().includes(joined.participant_id), 'the others never saw it leave');
    assert.ok(!second.messages.some((m) => m.type === 'leave'), JSON.stringify(second.messages));
    second.send({ type: 'ping', ts: 9 });
    await waitFor(() => second.messages.some((m) => m.type === 'pong') || Promise.reject(new Error('no pong')), 3000, 'pong on the new connection');
    second.send({ type: 'leave' });
    await waitFor(() => leftIds().includes(joined.participant_id) || Promise.reject(new Error('not left')), 3000, 'leave from the new connection');
  });

  // Requirement: a participant that does not resume in time is removed and the room told.
  it('removes a participant that does not come back in time', async () => {
    const gone = await connect(server);
    gone.send({ type: 'join', room: 'res', name: 'gone' });
    const joined = await gone.reply();
    const dropped = Date.now();
    gone.ws.terminate();
    await waitFor(() => leftIds().includes(joined.participant_id) || Promise.reject(new Error('still there')), (GRACE_SECS + 3) * 1000, 'removal after the grace period');
    const after = Date.now() - dropped;
    assert.ok(after >= (GRACE_SECS - 0.5) * 1000, `removed after ${after} ms, before the grace period ended`);
    const late = await connect(server);
    late.send({ type: 'resume', resume_token: joined.resume_token });
    const refused = await late.reply();
    assert.equal(refused.type, 'error');
    assert.equal(refused.code, 'not_found');
  });

  // Requirement: the web client resumes by itself when its signaling connection drops: same
  // participant id, video keeps decoding, nobody sees it leave, and the new connection carries
  // the room's messages.
  it('the web client resumes after losing its WebSocket', { timeout: 90000 }, async () => {
    let browser;
    let A;
    let B;
    await withDiagnostics(() => ({ server, participants: [A, B] }), async () => {
      browser = await launchBrowser(makeTempDir());
      A = await openParticipant(browser, server.baseUrl, { room: 'res-b', name: 'A' });
      B = await openParticipant(browser, server.baseUrl, { room: 'res-b', name: 'B', audio: false, video: false });
      const videoOfA = async () => (await B.inboundStats()).find((s) => s.kind === 'video' && s.participantId === A.participantId);
      await waitFor(async () => (await videoOfA())?.framesDecoded > 0, 20000, 'B to decode A');
      await B.sfu(() => window.sfu._ws.close());
      await waitFor(async () => {
        const log = await B.sfu(() => window.sfu.log.join('\n'));
        if (!log.includes('resumed as')) throw new Error('not resumed yet');
        return true;
      }, 10000, 'B to resume');
      assert.equal(await B.sfu(() => window.sfu.participantId), B.participantId);
      assert.equal(await B.sfu(() => window.sfu.state), 'joined');
      const before = (await videoOfA()).framesDecoded;
      await sleep((GRACE_SECS + 1) * 1000);
      assert.ok((await videoOfA()).framesDecoded > before + 20, 'video keeps decoding after the resume');
      assert.ok(!(await A.messages()).some((m) => m.type === 'participant_left'), 'A never saw B leave');
      const videoTrack = (await B.participants())[A.participantId].tracks.find((t) => t.kind === 'video').id;
      await A.sfu(() => window.sfu.unpublish('video'));
      await waitFor(async () => {
        if (!(await B.messages()).some((m) => m.type === 'track_unpublished' && m.track_id === videoTrack)) throw new Error('no track_unpublished');
        return true;
      }, 10000, 'B to hear of the unpublish over the resumed connection');
    }).finally(async () => {
      await closeParticipant(A);
      await closeParticipant(B);
      if (browser) await browser.close().catch(() => {});
    });
  });

  // Requirement: an offer the web client sent just before its connection dropped, unanswered
  // (lost on the way, or its answer lost), goes again after the resume, and what it asked for
  // happens.
  it('the web client offers again what was unanswered when its WebSocket dropped', { timeout: 90000 }, async () => {
    let browser;
    let A;
    let B;
    await withDiagnostics(() => ({ server, participants: [A, B] }), async () => {
      browser = await launchBrowser(makeTempDir());
      A = await openParticipant(browser, server.baseUrl, { room: 'res-c', name: 'A', audio: false });
      B = await openParticipant(browser, server.baseUrl, { room: 'res-c', name: 'B', audio: false, video: false });
      const videoOfA = async () => (await B.inboundStats()).find((s) => s.kind === 'video' && s.participantId === A.participantId);
      await waitFor(async () => (await videoOfA())?.framesDecoded > 0, 20000, 'B to decode A');
      const videoTrack = (await B.participants())[A.participantId].tracks.find((t) => t.kind === 'video').id;
      await A.sfu(() => {
        const send = window.sfu.send.bind(window.sfu);
        window.sfu.send = (message) => {
          if (message.type === 'offer' && !window.offerLost) {
            window.offerLost = true;
            return true;
          }
          return send(message);
        };
        window.unpublished = window.sfu.unpublish('video').then(() => 'done', (err) => err.message);
        return true;
      });
      await waitFor(() => A.sfu(() => window.offerLost && window.sfu._pc.signalingState === 'have-local-offer'),
        10000, 'A to have an unanswered offer');
      await A.sfu(() => window.sfu._ws.close());
      await waitFor(async () => {
        if (!(await B.messages()).some((m) => m.type === 'track_unpublished' && m.track_id === videoTrack)) throw new Error('no track_unpublished');
        return true;
      }, 15000, 'B to hear of the unpublish offered again after the resume');
      assert.equal(await A.sfu(() => window.unpublished), 'done');
      assert.match(await A.sfu(() => window.sfu.log.join('\n')), /unanswered when the connection dropped/);
      assert.equal(await A.sfu(() => window.sfu.participantId), A.participantId, 'A resumed, not joined anew');

      // The answer lost instead: the server applied A's offer to publish again, but A never got
      // its answer. After the resume the same offer goes again, is answered, and B decodes it.
      await A.sfu(() => {
        const receive = window.sfu._onSocketMessage.bind(window.sfu);
        window.sfu._onSocketMessage = (raw) => {
          if (!window.answerLost && JSON.parse(raw).type === 'answer') {
            window.answerLost = true;
            return;
          }
          receive(raw);
        };
        window.published = window.sfu.publish({ audio: false, video: true }).then(() => 'done', (err) => err.message);
        return true;
      });
      await waitFor(() => A.sfu(() => window.answerLost === true), 15000, 'the server to answer A\'s publish');
      await A.sfu(() => window.sfu._ws.close());
      assert.equal(await A.sfu(() => window.published), 'done');
      const republished = await waitFor(async () => (await B.participants())[A.participantId].tracks.find((t) => t.kind === 'video')?.id,
        10000, 'B to list A\'s new video track');
      assert.notEqual(republished, videoTrack);
      await waitFor(async () => (await B.inboundStats()).find((s) => s.trackId === republished)?.framesDecoded > 0,
        20000, 'B to decode A\'s video published again');
    }).finally(async () => {
      await closeParticipant(A);
      await closeParticipant(B);
      if (browser) await browser.close().catch(() => {});
    });
  });

  // Requirement: unknown tokens are refused.
  it('refuses unknown tokens', async () => {
    const c = await connect(server);
    c.send({ type: 'resume', resume_token: 'ffffffffffffffffffffffffffffffff' });
    const r = await c.reply();
    assert.equal(r.type, 'error');
    assert.equal(r.code, 'not_found');
  });
});

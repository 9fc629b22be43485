// Resuming with the web client: it takes its participant back by itself when its WebSocket
// drops, media keeps flowing, and what was unanswered is offered again. (The protocol rules of
// resume (tokens, the grace period, replaced connections) are Rust tests: session and room
// harness.)

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  makeTempDir, startServer, waitFor, sleep, launchBrowser, openParticipant, closeParticipant, withDiagnostics,
} from './lib.mjs';

const GRACE_SECS = 3;

describe('resume', () => {
  let server;
  before(async () => {
    const tmp = makeTempDir();
    const config = path.join(tmp, 'resume.toml');
    fs.writeFileSync(config, `resume_grace_secs = ${GRACE_SECS}\n`);
    server = await startServer(tmp, { extraArgs: ['--config', config] });
  });
  after(async () => {
    if (server) await server.stop();
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

});

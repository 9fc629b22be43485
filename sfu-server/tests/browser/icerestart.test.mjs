// ICE restart: a participant whose network changes restarts ICE by offering new credentials;
// the server answers with new ones, routes the new checks by the new ufrag, and media goes on.

import { it } from 'node:test';
import assert from 'node:assert/strict';
import {
  makeTempDir, startServer, launchBrowser, openParticipant, closeParticipant, waitFor, sleep, withDiagnostics,
} from './lib.mjs';

// Requirement: after the subscriber restarts ICE, the server records the restart, ICE completes
// again on the new credentials, and video keeps decoding.
it('media survives a client-initiated ICE restart', { timeout: 90000 }, async () => {
  let server;
  let browser;
  let A;
  let B;
  await withDiagnostics(() => ({ server, participants: [A, B] }), async () => {
    const tmp = makeTempDir();
    server = await startServer(tmp);
    browser = await launchBrowser(tmp);
    A = await openParticipant(browser, server.baseUrl, { room: 'restart', name: 'A', audio: false });
    B = await openParticipant(browser, server.baseUrl, { room: 'restart', name: 'B', audio: false, video: false });
    const videoOfA = async () => (await B.inboundStats()).find((s) => s.kind === 'video' && s.participantId === A.participantId);
    await waitFor(async () => (await videoOfA())?.framesDecoded > 0, 20000, 'B to decode A');
    const timeline = async () => {
      const room = await (await fetch(`${server.baseUrl}/api/rooms/restart`)).json();
      return room.participants.find((p) => p.id === B.participantId).connection.timeline.map((s) => s.state);
    };
    const localUfrag = () => B.sfu(async () => {
      const stats = [...(await window.sfu._pc.getStats()).values()];
      const pair = stats.find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
      return pair ? `${pair.localCandidateId}|${stats.find((s) => s.type === 'transport')?.iceLocalUsernameFragment}` : null;
    });
    const before = await localUfrag();
    await B.sfu(() => window.sfu._pc.restartIce());
    await waitFor(async () => {
      const states = await timeline();
      const at = states.lastIndexOf('ice_restart');
      if (at < 0) throw new Error(`no restart yet: ${states}`);
      if (!states.slice(at + 1).some((s) => s === 'ice_connected' || s === 'ice_completed')) throw new Error(`not reconnected: ${states}`);
      return true;
    }, 20000, 'the server to see the restart and ICE to complete again');
    await waitFor(async () => {
      const after = await localUfrag();
      if (!after || after === before) throw new Error(`local side unchanged: ${before} -> ${after}`);
      return true;
    }, 10000, 'B to use new ICE credentials');
    const frames = (await videoOfA()).framesDecoded;
    await sleep(3000);
    assert.ok((await videoOfA()).framesDecoded > frames + 20, 'video keeps decoding after the restart');
  }).finally(async () => {
    await closeParticipant(A);
    await closeParticipant(B);
    if (browser) await browser.close().catch(() => {});
    if (server) await server.stop();
  });
});

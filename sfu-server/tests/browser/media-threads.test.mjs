// Several media threads: each owns a UDP port, rooms are spread over them, and a call on
// each thread carries media in real Chromium.

import { it } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import {
  makeTempDir, startServer, launchBrowser, closeBrowser, openParticipant, closeParticipant,
  withDiagnostics, expectMediaFrom, waitFor, sendOnlyAudioOffer,
} from './lib.mjs';

/** Join `room` over raw signaling with a send-only audio offer; the UDP port of the answer's
 * candidate, and the socket (kept open so the room stays open). */
async function candidatePortOf(wsUrl, room) {
  const ws = new WebSocket(wsUrl);
  const messages = [];
  ws.on('message', (d) => messages.push(JSON.parse(d.toString())));
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  ws.send(JSON.stringify({ type: 'join', room, name: 'probe' }));
  await waitFor(() => messages.some((m) => m.type === 'joined'), 5000, `joined ${room}`);
  ws.send(JSON.stringify({ type: 'offer', sdp: sendOnlyAudioOffer() }));
  const answer = await waitFor(() => messages.find((m) => m.type === 'answer'), 5000, `answer in ${room}`);
  const candidate = answer.sdp.split('\r\n').find((l) => l.startsWith('a=candidate:') && / udp /i.test(l));
  return { port: Number(candidate.split(' ')[5]), ws };
}

// Requirement: with media_threads = 2, the server listens on two UDP ports, puts two rooms
// on different threads (each advertising its own port), and calls on both carry media.
it('two media threads each carry a room', { timeout: 120000 }, async () => {
  let server;
  let browser;
  const participants = [];
  const probes = [];
  try {
    await withDiagnostics(() => ({ server, participants }), async () => {
      const tmp = makeTempDir('sfu-threads-');
      server = await startServer(tmp, { extraArgs: ['--media-threads', '2'] });
      assert.equal(server.udpAddrs.length, 2, `listening on ${server.udpAddrs}`);
      const ports = server.udpAddrs.map((a) => Number(a.slice(a.lastIndexOf(':') + 1)));
      for (const room of ['t1', 't2']) probes.push(await candidatePortOf(server.wsUrl, room));
      assert.deepEqual(probes.map((p) => p.port).sort(), [...ports].sort(),
        `rooms t1 and t2 advertise ports ${probes.map((p) => p.port)}; the threads listen on ${ports}`);
      browser = await launchBrowser(tmp);
      for (const room of ['t1', 't2']) {
        for (const name of ['A', 'B']) {
          participants.push(await openParticipant(browser, server.baseUrl, { room, name: `${room}-${name}` }));
        }
      }
      const [a1, b1, a2, b2] = participants;
      await Promise.all([expectMediaFrom(b1, [a1]), expectMediaFrom(b2, [a2])]);
    });
  } finally {
    for (const probe of probes) probe.ws.close();
    for (const p of participants) await closeParticipant(p);
    await closeBrowser(browser);
    if (server) await server.stop();
  }
});

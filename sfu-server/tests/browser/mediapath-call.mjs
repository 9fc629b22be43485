// The scenario of mediapath.test.mjs, run inside a private network namespace: A publishes,
// B receives. Once B decodes A's video, every UDP packet in the namespace is dropped
// (nftables): both media paths die. Once A and B were told to leave, C joins over signaling
// only and is shown who is in the room. Prints one JSON line with what A, B and C were told
// and the server's connection-failure counters.

import { execSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import {
  connectionFailures, makeTempDir, startServer, launchBrowser, openParticipant, closeParticipant, waitFor, getHealth,
} from './lib.mjs';
import { dropUdp } from './netns.mjs';

const CONNECT_TIMEOUT_SECS = 3;

const tmp = makeTempDir('sfu-mediapath-');
const config = path.join(tmp, 'mediapath.toml');
fs.writeFileSync(config, `ice_connect_timeout_secs = ${CONNECT_TIMEOUT_SECS}\n`);
const server = await startServer(tmp, { extraArgs: ['--config', config] });
const browser = await launchBrowser(tmp);
let A;
let B;
let watcher;
const seen = [];
try {
  A = await openParticipant(browser, server.baseUrl, { room: 'path', name: 'A', audio: false });
  B = await openParticipant(browser, server.baseUrl, { room: 'path', name: 'B', audio: false, video: false });
  const videoOfA = async () => (await B.inboundStats()).find((s) => s.kind === 'video' && s.participantId === A.participantId);
  await waitFor(async () => (await videoOfA())?.framesDecoded > 0, 30000, 'B to decode A\'s video');
  const cutAt = Date.now();
  execSync(dropUdp('cut').join(' && '));
  const leaveOf = async (p) => (await p.messages()).find((m) => m.type === 'leave');
  await waitFor(async () => (await leaveOf(A)) && (await leaveOf(B)), 60000, 'A and B to be told to leave');
  const removedAfterMs = Date.now() - cutAt;
  watcher = new WebSocket(server.wsUrl);
  watcher.on('message', (data) => seen.push(JSON.parse(data.toString())));
  await new Promise((resolve, reject) => { watcher.once('open', resolve); watcher.once('error', reject); });
  watcher.send(JSON.stringify({ type: 'join', room: 'path', name: 'C' }));
  const joined = await waitFor(() => seen.find((m) => m.type === 'joined'), 5000, 'C to join');
  const failures = await connectionFailures(server);
  const health = await getHealth(server.baseUrl);
  console.log(JSON.stringify({
    removed_after_ms: removedAfterMs,
    leave_a: await leaveOf(A),
    leave_b: await leaveOf(B),
    a_id: A.participantId,
    b_id: B.participantId,
    c_sees: joined.participants.map((p) => p.id),
    failures,
    participants_left: health.participants,
  }));
} catch (err) {
  console.log(JSON.stringify({ error: err.message, log: server.logTail(40) }));
  process.exitCode = 1;
} finally {
  if (watcher) watcher.close();
  await closeParticipant(A);
  await closeParticipant(B);
  await browser.close().catch(() => {});
  await server.stop();
}

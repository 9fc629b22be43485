// The scenario of mediapath.test.mjs's recovery case, run inside a private network
// namespace: A publishes, B receives. Once B decodes A's video, every UDP packet in the
// namespace is dropped until the server's ICE agent reports the path disconnected, then
// let through again. Prints one JSON line: whether A and B were told to leave, whether B
// decodes A's video again, and the server's connection-failure counters, taken well after
// ice_connect_timeout_secs has passed since the path came back.

import { execSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  connectionFailures, makeTempDir, startServer, launchBrowser, openParticipant, closeParticipant, waitFor, sleep, getHealth,
} from './lib.mjs';
import { dropUdp } from './netns.mjs';

const CONNECT_TIMEOUT_SECS = 3;

const tmp = makeTempDir('sfu-mediapath-blip-');
const config = path.join(tmp, 'mediapath-blip.toml');
fs.writeFileSync(config, `ice_connect_timeout_secs = ${CONNECT_TIMEOUT_SECS}\n`);
const server = await startServer(tmp, { extraArgs: ['--config', config] });
const browser = await launchBrowser(tmp);
let A;
let B;
try {
  A = await openParticipant(browser, server.baseUrl, { room: 'blip', name: 'A', audio: false });
  B = await openParticipant(browser, server.baseUrl, { room: 'blip', name: 'B', audio: false, video: false });
  const videoOfA = async () => (await B.inboundStats()).find((s) => s.kind === 'video' && s.participantId === A.participantId);
  await waitFor(async () => (await videoOfA())?.framesDecoded > 0, 30000, 'B to decode A\'s video');
  execSync(dropUdp('cut').join(' && '));
  await waitFor(() => server.logTail(400).includes('state=Disconnected'), 40000, 'the server to see the path disconnected');
  execSync('nft delete table inet cut');
  const restoredAt = Date.now();
  const before = (await videoOfA())?.framesDecoded ?? 0;
  await waitFor(async () => ((await videoOfA())?.framesDecoded ?? 0) > before + 10, 20000, 'B to decode A\'s video again');
  // Past the connect timeout, counted from the path's return, with a margin.
  await sleep(Math.max(0, CONNECT_TIMEOUT_SECS * 1000 * 3 - (Date.now() - restoredAt)));
  const leaveOf = async (p) => (await p.messages()).find((m) => m.type === 'leave') ?? null;
  const failures = await connectionFailures(server);
  const health = await getHealth(server.baseUrl);
  console.log(JSON.stringify({
    leave_a: await leaveOf(A),
    leave_b: await leaveOf(B),
    decoded_after: (await videoOfA())?.framesDecoded ?? 0,
    decoded_before: before,
    failures,
    participants: health.participants,
  }));
} catch (err) {
  console.log(JSON.stringify({ error: err.message, log: server.logTail(40) }));
  process.exitCode = 1;
} finally {
  await closeParticipant(A);
  await closeParticipant(B);
  await browser.close().catch(() => {});
  await server.stop();
}

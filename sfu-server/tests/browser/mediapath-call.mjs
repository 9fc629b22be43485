// The scenarios of mediapath.test.mjs, run inside a private network namespace: A publishes,
// B receives, and once B decodes A's video every UDP packet in the namespace is dropped
// (nftables). Prints one JSON line with what A and B were told, the server's
// connection-failure counters and what the mode (the first argument) adds:
// - `cut`: the drop stays, both media paths die. Once A and B were told to leave, C joins over
//   signaling only and is shown who is in the room.
// - `blip`: the drop ends once the server's ICE agent reports the path disconnected. Whether
//   B decodes A's video again, taken well after ice_connect_timeout_secs has passed since the
//   path came back.

import { execSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import {
  connectionFailures, makeTempDir, startServer, launchBrowser, openParticipant, closeParticipant, waitFor, sleep, getHealth,
} from './lib.mjs';
import { dropUdp } from './netns.mjs';

const CONNECT_TIMEOUT_SECS = 3;
const mode = process.argv[2] ?? 'cut';
if (!['cut', 'blip'].includes(mode)) throw new Error(`unknown mode ${mode}`);

const tmp = makeTempDir(`sfu-mediapath-${mode}-`);
const config = path.join(tmp, 'mediapath.toml');
fs.writeFileSync(config, `ice_connect_timeout_secs = ${CONNECT_TIMEOUT_SECS}\n`);
// Estimates and str0m's events in the log, for the tail a failure prints.
const server = await startServer(tmp, {
  extraArgs: ['--config', config],
  env: { RUST_LOG: 'info,sfu_server::room::forwarding=debug' },
});
const browser = await launchBrowser(tmp);
let A;
let B;
let watcher;

/** The path stays cut: A and B are removed, and C, joining after, sees neither. */
async function cut(leaveOf, cutAt) {
  await waitFor(async () => (await leaveOf(A)) && (await leaveOf(B)), 60000, 'A and B to be told to leave');
  const removedAfterMs = Date.now() - cutAt;
  const seen = [];
  watcher = new WebSocket(server.wsUrl);
  watcher.on('message', (data) => seen.push(JSON.parse(data.toString())));
  await new Promise((resolve, reject) => { watcher.once('open', resolve); watcher.once('error', reject); });
  watcher.send(JSON.stringify({ type: 'join', room: 'path', name: 'C' }));
  const joined = await waitFor(() => seen.find((m) => m.type === 'joined'), 5000, 'C to join');
  return {
    removed_after_ms: removedAfterMs,
    a_id: A.participantId,
    b_id: B.participantId,
    c_sees: joined.participants.map((p) => p.id),
  };
}

/** The path comes back once ICE reported it disconnected: B decodes A again. */
async function blip(videoOfA) {
  await waitFor(() => server.logTail(400).includes('state=Disconnected'), 40000, 'the server to see the path disconnected');
  execSync('nft delete table inet cut');
  const restoredAt = Date.now();
  const before = (await videoOfA())?.framesDecoded ?? 0;
  await waitFor(async () => ((await videoOfA())?.framesDecoded ?? 0) > before + 10, 20000, 'B to decode A\'s video again');
  // Past the connect timeout, counted from the path's return, with a margin.
  await sleep(Math.max(0, CONNECT_TIMEOUT_SECS * 1000 * 3 - (Date.now() - restoredAt)));
  return { decoded_after: (await videoOfA())?.framesDecoded ?? 0, decoded_before: before };
}

/** What the call looked like when a step failed: B's view of A's video, and the room's. */
async function stateOfTheCall() {
  const safely = (what) => what.catch((e) => `(unavailable: ${e.message})`);
  const room = await safely(fetch(`${server.baseUrl}/api/rooms/path`).then((r) => r.json()));
  const videoAtB = await safely((async () => (await B?.inboundStats())?.filter((s) => s.kind === 'video'))());
  const videoOfA = await safely((async () => (await A?.outboundStats())?.filter((s) => s.kind === 'video'))());
  return { room, video_at_b: videoAtB, video_of_a: videoOfA };
}

try {
  A = await openParticipant(browser, server.baseUrl, { room: 'path', name: 'A', audio: false });
  B = await openParticipant(browser, server.baseUrl, { room: 'path', name: 'B', audio: false, video: false });
  const videoOfA = async () => (await B.inboundStats()).find((s) => s.kind === 'video' && s.participantId === A.participantId);
  await waitFor(async () => (await videoOfA())?.framesDecoded > 0, 30000, 'B to decode A\'s video');
  const cutAt = Date.now();
  execSync(dropUdp('cut').join(' && '));
  const leaveOf = async (p) => (await p.messages()).find((m) => m.type === 'leave') ?? null;
  const seen = mode === 'cut' ? await cut(leaveOf, cutAt) : await blip(videoOfA);
  const failures = await connectionFailures(server);
  const health = await getHealth(server.baseUrl);
  console.log(JSON.stringify({
    ...seen,
    leave_a: await leaveOf(A),
    leave_b: await leaveOf(B),
    failures,
    participants: health.participants,
  }));
} catch (err) {
  console.log(JSON.stringify({ error: err.message, state: await stateOfTheCall(), log: server.logTail(80) }));
  process.exitCode = 1;
} finally {
  if (watcher) watcher.close();
  await closeParticipant(A);
  await closeParticipant(B);
  await browser.close().catch(() => {});
  await server.stop();
}

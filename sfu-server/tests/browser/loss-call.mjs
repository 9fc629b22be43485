// The scenario of loss.test.mjs, meant to run inside a private network namespace whose loopback
// drops packets (netem). A publishes camera + mic, B receives; after a warm-up, B's decoding,
// NACK and retransmission counters and the server's RTCP counters are sampled over a window
// and printed as one JSON line. loss.test.mjs starts this and asserts on the result.

import {
  makeTempDir, startServer, launchBrowser, openParticipant, closeParticipant, getHealth,
  waitFor, sleep,
} from './lib.mjs';

const WINDOW_MS = 15000;

const tmp = makeTempDir('sfu-loss-');
const server = await startServer(tmp);
const browser = await launchBrowser(tmp);
let A;
let B;
try {
  A = await openParticipant(browser, server.baseUrl, { room: 'loss', name: 'A' });
  B = await openParticipant(browser, server.baseUrl, { room: 'loss', name: 'B', audio: false, video: false });
  const videoOfA = async () => (await B.inboundStats()).find((s) => s.kind === 'video' && s.participantId === A.participantId);
  await waitFor(async () => (await videoOfA())?.framesDecoded > 0, 30000, 'B to decode A\'s video under loss');
  const before = await videoOfA();
  await sleep(WINDOW_MS);
  const after = await videoOfA();
  const health = await getHealth(server.baseUrl);
  console.log(JSON.stringify({
    window_ms: WINDOW_MS,
    frames_decoded: after.framesDecoded - before.framesDecoded,
    nacks_sent_by_subscriber: after.nackCount,
    retransmissions_received: after.retransmittedPacketsReceived,
    packets_lost_seen_by_subscriber: after.packetsLost,
    server: health.counters,
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

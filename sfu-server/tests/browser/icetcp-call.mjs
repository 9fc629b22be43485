// The scenario of icetcp.test.mjs, run inside a private network namespace where every UDP
// packet is dropped (nftables, set up before this script starts): the server listens for
// ICE-TCP too, A publishes and B receives, and the only way their media can flow is TCP.
// Prints one JSON line with what B decoded, the protocol of each side's selected candidate
// pair and the server's counters.

import {
  makeTempDir, startServer, launchBrowser, openParticipant, closeParticipant, waitFor, sleep, getHealth,
} from './lib.mjs';

const tmp = makeTempDir('sfu-icetcp-');
const server = await startServer(tmp, { extraArgs: ['--ice-tcp', '127.0.0.1:0'] });
const browser = await launchBrowser(tmp);
let A;
let B;
const selectedProtocol = (p) => p.sfu(async () => {
  const stats = [...(await window.sfu._pc.getStats()).values()];
  const pair = stats.find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
  const local = stats.find((s) => s.id === pair?.localCandidateId);
  return local ? `${local.protocol}/${local.candidateType}` : null;
});
try {
  A = await openParticipant(browser, server.baseUrl, { room: 'tcp', name: 'A', audio: true });
  B = await openParticipant(browser, server.baseUrl, { room: 'tcp', name: 'B', audio: false, video: false });
  const videoOfA = async () => (await B.inboundStats()).find((s) => s.kind === 'video' && s.participantId === A.participantId);
  await waitFor(async () => (await videoOfA())?.framesDecoded > 0, 40000, 'B to decode A\'s video over TCP');
  const first = (await videoOfA()).framesDecoded;
  await sleep(5000);
  const later = (await videoOfA()).framesDecoded;
  const health = await getHealth(server.baseUrl);
  console.log(JSON.stringify({
    ice_tcp: server.iceTcpAddr,
    frames_in_5s: later - first,
    a_pair: await selectedProtocol(A),
    b_pair: await selectedProtocol(B),
    counters: health.counters,
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

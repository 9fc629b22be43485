// The scenario of bandwidth.test.mjs, meant to run inside a private network namespace (it adds
// and removes nftables rules there). P publishes three simulcast layers, S receives with quality
// "auto". Once S decodes the full layer, packets from the server's UDP port are policed to
// LIMIT_KBPS on receipt (the server's downlink toward S; P only gets RTCP from it); S must fall
// to a lower layer and keep decoding. The limit is then lifted and S must climb back to the full
// layer. Prints one JSON line with what was seen.

import { execFileSync } from 'node:child_process';
import {
  makeTempDir, startServer, launchBrowser, openParticipant, closeParticipant, getHealth,
  waitFor, sleep, SIMULCAST_ARGS,
} from './lib.mjs';

const LIMIT_KBPS = 400;

const nft = (...args) => execFileSync('nft', args, { stdio: 'pipe' });

const tmp = makeTempDir('sfu-bandwidth-');
const server = await startServer(tmp);
const browser = await launchBrowser(tmp, { extraArgs: SIMULCAST_ARGS });
let P;
let S;
const seen = { phases: {} };
try {
  P = await openParticipant(browser, server.baseUrl, { room: 'bw', name: 'P', audio: false, simulcast: true });
  S = await openParticipant(browser, server.baseUrl, { room: 'bw', name: 'S', audio: false, video: false });
  const inbound = async () => (await S.inboundStats()).find((s) => s.kind === 'video' && s.participantId === P.participantId);
  const qualities = async () => (await S.messages()).filter((m) => m.type === 'quality').map((m) => m.quality);
  const started = Date.now();
  const widthBecomes = async (phase, accept, timeoutMs) => {
    const t0 = Date.now();
    const s = await waitFor(async () => {
      const s = await inbound();
      if (!s || !accept(s.frameWidth)) throw new Error(`frameWidth ${s?.frameWidth}`);
      return s;
    }, timeoutMs, `S's decoded width (${phase})`, 250);
    seen.phases[phase] = { width: s.frameWidth, after_ms: Date.now() - t0 };
  };

  await widthBecomes('unlimited', (w) => w === 1280, 40000);
  nft('add', 'table', 'inet', 'police');
  nft('add', 'chain', 'inet', 'police', 'in', '{ type filter hook input priority 0; }');
  nft('add', 'rule', 'inet', 'police', 'in', 'udp', 'sport', String(server.udpPort),
    'limit', 'rate', 'over', `${LIMIT_KBPS / 8} kbytes/second`, 'burst', '16 kbytes', 'drop');
  await widthBecomes('limited', (w) => w > 0 && w < 1280, 40000);
  const before = await inbound();
  await sleep(5000);
  const after = await inbound();
  seen.frames_decoded_while_limited = after.framesDecoded - before.framesDecoded;
  seen.width_while_limited = after.frameWidth;
  seen.qualities_while_limited = await qualities();
  nft('delete', 'table', 'inet', 'police');
  await widthBecomes('lifted', (w) => w === 1280, 60000);
  seen.qualities = await qualities();
  seen.elapsed_ms = Date.now() - started;
  seen.server = (await getHealth(server.baseUrl)).counters;
  console.log(JSON.stringify(seen));
} catch (err) {
  console.log(JSON.stringify({ ...seen, error: err.message, log: server.logTail(40) }));
  process.exitCode = 1;
} finally {
  await closeParticipant(P);
  await closeParticipant(S);
  await browser.close().catch(() => {});
  await server.stop();
}

// The scenario of bandwidth.test.mjs, meant to run inside a private network namespace (it
// changes the loopback's queueing there). P publishes three simulcast layers, S receives with
// quality "auto". Once S decodes the full layer, packets from the server's UDP port are shaped
// to LIMIT_KBPS with a short queue (an htb class; the server's downlink toward S, P only gets
// RTCP from it), like a slow access link; S must fall to a lower layer and keep decoding. The
// limit is then lifted and S must climb back to the full layer. Prints one JSON line.

import { execFileSync } from 'node:child_process';
import {
  makeTempDir, startServer, launchBrowser, openParticipant, closeParticipant, getHealth,
  waitFor, sleep, SIMULCAST_ARGS,
} from './lib.mjs';

const LIMIT_KBPS = 400;

const tc = (...args) => execFileSync('tc', args, { stdio: 'pipe' });
/** Queue of the limited class, in packets (about 0.7 s at the limit). */
const QUEUE_PACKETS = 30;

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
  tc('qdisc', 'add', 'dev', 'lo', 'root', 'handle', '1:', 'htb', 'default', '10');
  tc('class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:10', 'htb', 'rate', '10gbit');
  tc('class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:20', 'htb',
    'rate', `${LIMIT_KBPS}kbit`, 'ceil', `${LIMIT_KBPS}kbit`, 'burst', '4kb');
  tc('qdisc', 'add', 'dev', 'lo', 'parent', '1:20', 'handle', '20:', 'pfifo', 'limit', String(QUEUE_PACKETS));
  tc('filter', 'add', 'dev', 'lo', 'parent', '1:', 'protocol', 'ip', 'prio', '1',
    'u32', 'match', 'ip', 'sport', String(server.udpPort), '0xffff', 'flowid', '1:20');
  await widthBecomes('limited', (w) => w > 0 && w < 1280, 40000);
  const before = await inbound();
  await sleep(5000);
  const after = await inbound();
  seen.frames_decoded_while_limited = after.framesDecoded - before.framesDecoded;
  seen.width_while_limited = after.frameWidth;
  seen.qualities_while_limited = await qualities();
  tc('qdisc', 'del', 'dev', 'lo', 'root');
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

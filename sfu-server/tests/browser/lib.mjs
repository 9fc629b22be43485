// Helpers for the SFU browser tests: start the server binary, drive headless
// Debian Chromium through playwright-core, poll for conditions, read /healthz.
// The `window.sfu` API used here is specified in sfu-server/web/CONTRACT.md.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import crypto from 'node:crypto';
import parsePrometheus from 'parse-prometheus-text-format';
import { chromium } from 'playwright-core';

export const REPO_ROOT = path.resolve(fileURLToPath(import.meta.url), '../../../..');
export const SERVER_BIN = process.env.SFU_SERVER_BIN || path.join(REPO_ROOT, 'target/debug/sfu-server');
/** The loadtest binary, built beside the server by `cargo test --workspace`. */
export const LOADTEST_BIN = process.env.SFU_LOADTEST_BIN || path.join(path.dirname(SERVER_BIN), 'loadtest');
export const CHROMIUM_BIN = '/usr/bin/chromium';
// The binary embeds the web client at build time (include_str!). With SFU_WEB_FROM_DISK=1 the pages
// load sfu-server/web/* from the working tree instead, to test client edits without a rebuild.
export const WEB_DIR = path.join(REPO_ROOT, 'sfu-server/web');
const WEB_FROM_DISK = process.env.SFU_WEB_FROM_DISK === '1';
const WEB_FILES = { '/': ['index.html', 'text/html; charset=utf-8'], '/sfu-client.js': ['sfu-client.js', 'text/javascript; charset=utf-8'], '/app.js': ['app.js', 'text/javascript; charset=utf-8'], '/style.css': ['style.css', 'text/css; charset=utf-8'] };

// Flags from shared/design.md "Testing against real clients" (Playwright adds --headless itself
// and refuses --user-data-dir in args; we pass a fresh one through launchPersistentContext).
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
];

/** Chromium sends three simulcast layers only from 720p up unless this field trial lifts the limit. */
export const SIMULCAST_ARGS = ['--force-fieldtrials=WebRTC-LegacySimulcastLayerLimit/Disabled/'];

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A free loopback TCP port, for helper servers (Prometheus, coturn, Redis) a test starts. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** A fresh temp directory for one test file's logs and browser profile. */
export function makeTempDir(prefix = 'sfu-browser-test-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Rejects with `what` if `promise` has not settled within `ms`. */
export async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Polls `fn` every `intervalMs` until it returns a truthy value, which is returned.
 * `fn` may throw (e.g. an assert) to say "not yet"; the last error or value is put
 * in the failure message when `timeoutMs` runs out.
 */
export async function waitFor(fn, timeoutMs, what, intervalMs = 250) {
  const deadline = Date.now() + timeoutMs;
  let last = 'never evaluated';
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
      last = `returned ${JSON.stringify(value)}`;
    } catch (err) {
      last = `threw: ${err && err.message ? err.message : err}`;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last attempt ${last}`);
    }
    await sleep(intervalMs);
  }
}

function tailOfFile(file, lines) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch (err) {
    return `(cannot read ${file}: ${err.message})`;
  }
}

/**
 * Starts the SFU on free loopback ports and waits for its `listening:` line.
 * stdout and stderr go to `<tmpDir>/server.log`.
 */
export async function startServer(tmpDir, { extraArgs = [], env = {}, timeoutMs = 20000, udp = '127.0.0.1:0', http = '127.0.0.1:0' } = {}) {
  if (!fs.existsSync(SERVER_BIN)) {
    throw new Error(`server binary not found at ${SERVER_BIN}: run \`cargo build -p sfu-server\` or set SFU_SERVER_BIN`);
  }
  const logPath = path.join(tmpDir, 'server.log');
  const log = fs.createWriteStream(logPath);
  const proc = spawn(SERVER_BIN, ['--http', http, '--udp', udp, '--metrics-listen', '127.0.0.1:0', ...extraArgs], {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  proc.stderr.pipe(log, { end: false });

  const listening = new Promise((resolve, reject) => {
    let buffered = '';
    proc.stdout.on('data', (chunk) => {
      log.write(chunk);
      buffered += chunk.toString();
      const m = buffered.match(/listening: http=(\S+) udp=(\S+)(?: metrics=(\S+))?(?: ice_tcp=(\S+))?\n/);
      if (m) resolve({ http: m[1], udp: m[2], metrics: m[3], iceTcp: m[4] });
    });
    proc.once('error', reject);
    exited.then(({ code, signal }) =>
      reject(new Error(`server exited before listening (code ${code}, signal ${signal})`)));
  });

  const server = {
    proc,
    logPath,
    exited,
    isAlive: () => proc.exitCode === null && proc.signalCode === null,
    logTail: (lines = 60) => tailOfFile(logPath, lines),
    async stop() {
      if (server.isAlive()) {
        proc.kill('SIGTERM');
        const killer = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(killer);
      }
      await new Promise((resolve) => log.end(resolve));
      return exited;
    },
  };

  try {
    const addr = await withTimeout(listening, timeoutMs, `server "listening:" line on stdout`);
    // One address per media thread; the first is the one most tests need.
    const udpAddrs = addr.udp.split(',');
    const [udpHost, udpPort] = splitHostPort(udpAddrs[0]);
    Object.assign(server, {
      httpAddr: addr.http,
      udpAddr: udpAddrs[0],
      udpAddrs,
      udpHost,
      udpPort,
      baseUrl: `http://${addr.http}`,
      metricsUrl: addr.metrics ? `http://${addr.metrics}/metrics` : undefined,
      iceTcpAddr: addr.iceTcp,
      wsUrl: `ws://${addr.http}/ws`,
    });
    return server;
  } catch (err) {
    await server.stop();
    throw new Error(`${err.message}\n--- server log tail (${logPath}) ---\n${server.logTail()}`);
  }
}

function splitHostPort(addr) {
  const i = addr.lastIndexOf(':');
  return [addr.slice(0, i).replace(/^\[|\]$/g, ''), Number(addr.slice(i + 1))];
}

/** GET /healthz as parsed JSON. */
export async function getHealth(baseUrl) {
  const res = await fetch(`${baseUrl}/healthz`);
  if (!res.ok) throw new Error(`/healthz answered HTTP ${res.status}`);
  return res.json();
}

/**
 * Launches one headless Chromium (fresh profile under tmpDir) with fake camera and mic.
 * Fails, never skips, when Chromium is not installed.
 */
export async function launchBrowser(tmpDir, { extraArgs = [] } = {}) {
  if (!fs.existsSync(CHROMIUM_BIN)) {
    throw new Error(`Chromium not found at ${CHROMIUM_BIN}: install Debian packages chromium and chromium-driver (./test.sh does)`);
  }
  const userDataDir = path.join(tmpDir, 'chromium-profile');
  fs.mkdirSync(userDataDir, { recursive: true });
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM_BIN,
    headless: true,
    // A page answered by route.fulfill has no address space of its own: Chromium's local network
    // access checks then block its WebSocket to 127.0.0.1.
    args: [...CHROMIUM_ARGS, ...(WEB_FROM_DISK ? ['--disable-features=LocalNetworkAccessChecks'] : []), ...extraArgs],
    timeout: 30000,
  });
  profileDirs.set(context, userDataDir);
  return context;
}

const profileDirs = new WeakMap();

/** Closes a browser from launchBrowser and deletes its profile (the server log stays). Never throws. */
export async function closeBrowser(context) {
  if (!context) return;
  await context.close().catch(() => {});
  const dir = profileDirs.get(context);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * Opens the web client in a new page of `context`, waits for `window.sfu` and joins.
 * Returns a participant handle: {name, room, page, participantId, joined, console, ...}.
 */
export async function openParticipant(context, baseUrl, { room, name, audio = true, video = true, autoSubscribe = true, videoCodec, simulcast = false, token, iceTransportPolicy }) {
  const page = await context.newPage();
  const consoleLines = [];
  page.on('console', (msg) => consoleLines.push(`[${msg.type()}] ${msg.text()}`));
  page.on('pageerror', (err) => consoleLines.push(`[pageerror] ${err.message}`));
  if (WEB_FROM_DISK) await serveWebFromDisk(page, baseUrl);
  await page.goto(`${baseUrl}/`, { timeout: 15000 });
  await page.waitForFunction(() => window.sfu && typeof window.sfu.join === 'function', null, { timeout: 10000 });
  // Simulcast (the web client's default) only where a test asks for it: three 720p layers per tab
  // would cost more CPU than this 2-core machine has for the multi-tab tests.
  const opts = { room, name, audio, video, autoSubscribe, simulcast };
  if (videoCodec) opts.videoCodec = videoCodec;
  if (token) opts.token = token;
  if (iceTransportPolicy) opts.iceTransportPolicy = iceTransportPolicy;
  const joined = await withTimeout(
    page.evaluate((o) => window.sfu.join(o), opts),
    20000,
    `${name}: sfu.join({room: ${room}})`,
  );
  if (!joined || typeof joined.participant_id !== 'string') {
    throw new Error(`${name}: sfu.join resolved to ${JSON.stringify(joined)}, expected a "joined" message`);
  }
  return {
    name,
    room,
    page,
    joined,
    participantId: joined.participant_id,
    console: consoleLines,
    sfu: (fn, arg) => page.evaluate(fn, arg),
    inboundStats: () => page.evaluate(() => window.sfu.inboundStats()),
    outboundStats: () => page.evaluate(() => window.sfu.outboundStats()),
    remoteTracks: () => page.evaluate(() => window.sfu.remoteTracks()),
    participants: () => page.evaluate(() => window.sfu.participants),
    messages: () => page.evaluate(() => window.sfu.messages),
    dataMessages: () => page.evaluate(() => window.sfu.dataMessages),
  };
}

/** Answers the page's requests for the web client's files from WEB_DIR (see SFU_WEB_FROM_DISK). */
async function serveWebFromDisk(page, baseUrl) {
  for (const [urlPath, [file, contentType]] of Object.entries(WEB_FILES)) {
    await page.route(`${baseUrl}${urlPath}`, (route) => route.fulfill({
      status: 200, contentType, body: fs.readFileSync(path.join(WEB_DIR, file)),
    }));
  }
}

/** Text describing each participant's client log and console tail, and the server log tail. */
export async function diagnostics(server, participants) {
  const parts = [];
  for (const p of participants.filter(Boolean)) {
    let clientLog = '(page unavailable)';
    try {
      clientLog = (await withTimeout(p.page.evaluate(() => (window.sfu && window.sfu.log) || []), 3000, 'sfu.log'))
        .slice(-30).join('\n');
    } catch (err) {
      clientLog = `(cannot read sfu.log: ${err.message})`;
    }
    parts.push(`--- ${p.name} (${p.participantId}, room ${p.room}) sfu.log tail ---\n${clientLog}`);
    parts.push(`--- ${p.name} console tail ---\n${p.console.slice(-15).join('\n')}`);
  }
  if (server) parts.push(`--- server log tail (${server.logPath}) ---\n${server.logTail()}`);
  return parts.join('\n');
}

/** Runs `fn`; on failure prints diagnostics of `getState()` = {server, participants} and rethrows. */
export async function withDiagnostics(getState, fn) {
  try {
    return await fn();
  } catch (err) {
    const { server, participants = [] } = getState();
    console.error(`\n===== failure: ${err.message}\n${await diagnostics(server, participants)}\n=====`);
    throw err;
  }
}

/**
 * The remote tracks `viewer` should receive from `publisher`, from viewer's `sfu.participants`.
 * Expects exactly one audio and one video track per publisher.
 */
export async function publishedTracksOf(viewer, publisher) {
  const participants = await viewer.participants();
  const entry = participants[publisher.participantId];
  if (!entry) throw new Error(`${viewer.name} does not list ${publisher.name} (${publisher.participantId}) in sfu.participants`);
  const video = (entry.tracks || []).filter((t) => t.kind === 'video');
  const audio = (entry.tracks || []).filter((t) => t.kind === 'audio');
  if (video.length !== 1 || audio.length !== 1) {
    throw new Error(`${viewer.name} sees ${publisher.name} with tracks ${JSON.stringify(entry.tracks)}, expected one audio and one video`);
  }
  return { videoTrackId: video[0].id, audioTrackId: audio[0].id };
}

/** Per publisher: {video: framesDecoded, audio: packetsReceived} of the inbound stats for its tracks. */
async function mediaCounters(viewer, publishers) {
  const stats = await viewer.inboundStats();
  const counters = {};
  for (const pub of publishers) {
    const { videoTrackId, audioTrackId } = await publishedTracksOf(viewer, pub);
    const video = stats.find((s) => s.trackId === videoTrackId && s.kind === 'video');
    const audio = stats.find((s) => s.trackId === audioTrackId && s.kind === 'audio');
    if (!video || !audio) {
      throw new Error(`${viewer.name} has no inbound-rtp for ${pub.name}'s ${!video ? `video ${videoTrackId}` : `audio ${audioTrackId}`}; ` +
        `inbound: ${JSON.stringify(stats.map((s) => ({ trackId: s.trackId, participantId: s.participantId, kind: s.kind, frames: s.framesDecoded, packets: s.packetsReceived })))}`);
    }
    for (const s of [video, audio]) {
      if (s.participantId !== pub.participantId) {
        throw new Error(`${viewer.name}: inbound ${s.kind} track ${s.trackId} is attributed to ${s.participantId}, expected ${pub.name} (${pub.participantId})`);
      }
    }
    counters[pub.participantId] = { video: video.framesDecoded, audio: audio.packetsReceived };
  }
  return counters;
}

/**
 * Asserts `viewer` decodes video frames and receives audio packets from each publisher,
 * and that both counters keep growing: first waits for any media, then for
 * `minFrames` more frames and `minPackets` more audio packets than at that moment.
 */
export async function expectMediaFrom(viewer, publishers, { firstMediaMs = 20000, growthMs = 10000, minFrames = 10, minPackets = 10 } = {}) {
  const names = publishers.map((p) => p.name).join(', ');
  const start = await waitFor(async () => {
    const c = await mediaCounters(viewer, publishers);
    for (const pub of publishers) {
      const { video, audio } = c[pub.participantId];
      if (!(video > 0 && audio > 0)) throw new Error(`from ${pub.name}: framesDecoded=${video}, audio packetsReceived=${audio}`);
    }
    return c;
  }, firstMediaMs, `${viewer.name} to decode first video frames and receive audio from ${names}`);
  await waitFor(async () => {
    const c = await mediaCounters(viewer, publishers);
    for (const pub of publishers) {
      const before = start[pub.participantId];
      const now = c[pub.participantId];
      if (now.video < before.video + minFrames || now.audio < before.audio + minPackets) {
        throw new Error(`from ${pub.name}: framesDecoded ${before.video} -> ${now.video} (need +${minFrames}), ` +
          `audio packetsReceived ${before.audio} -> ${now.audio} (need +${minPackets})`);
      }
    }
    return true;
  }, growthMs, `${viewer.name}'s media from ${names} to keep flowing`);
}

/** Leaves (if still joined) and closes the page; never throws. */
export async function closeParticipant(p) {
  if (!p) return;
  try {
    await withTimeout(p.page.evaluate(() => window.sfu && window.sfu.state === 'joined' && window.sfu.leave()), 3000, 'leave');
  } catch { /* page may be gone */ }
  try {
    await p.page.close();
  } catch { /* already closed */ }
}

/**
 * A complete offer SDP, with ICE credentials and a DTLS fingerprint, for raw signaling
 * clients that negotiate without a browser. Each section: `kind` ('audio' | 'video'),
 * `port` (9; 0 rejects it unless `bundled`), `direction` ('sendonly'), `bundled` (listed in
 * BUNDLE, default true), `bundleOnly` (adds a=bundle-only), `rids` (send rids, simulcast),
 * `ssrcs` (declared SSRCs).
 */
export function rawOffer(sections) {
  const fingerprint = [...crypto.randomBytes(32)].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join(':');
  const all = sections.map((s, mid) => ({ mid, kind: 'audio', port: 9, direction: 'sendonly', bundled: true, bundleOnly: false, rids: [], ssrcs: [1001 + mid], ...s }));
  const bundle = all.filter((s) => s.bundled).map((s) => s.mid).join(' ');
  const lines = ['v=0', 'o=- 4611731400430051336 2 IN IP4 127.0.0.1', 's=-', 't=0 0', `a=group:BUNDLE ${bundle}`, 'a=msid-semantic: WMS s'];
  for (const s of all) {
    const [pt, rtpmap] = s.kind === 'audio' ? [111, 'opus/48000/2'] : [96, 'VP8/90000'];
    lines.push(`m=${s.kind} ${s.port} UDP/TLS/RTP/SAVPF ${pt}`, 'c=IN IP4 0.0.0.0', 'a=rtcp:9 IN IP4 0.0.0.0',
      'a=ice-ufrag:Zx9q', 'a=ice-pwd:0123456789abcdefghijklmn', 'a=ice-options:trickle',
      `a=fingerprint:sha-256 ${fingerprint}`, 'a=setup:actpass', `a=mid:${s.mid}`);
    if (s.bundleOnly) lines.push('a=bundle-only');
    lines.push('a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid', `a=${s.direction}`, `a=msid:s t${s.mid}`, 'a=rtcp-mux',
      `a=rtpmap:${pt} ${rtpmap}`);
    if (s.kind === 'audio') lines.push(`a=fmtp:${pt} minptime=10;useinbandfec=1`);
    for (const rid of s.rids) lines.push(`a=rid:${rid} send`);
    if (s.rids.length) lines.push(`a=simulcast:send ${s.rids.join(';')}`);
    for (const ssrc of s.ssrcs) lines.push(`a=ssrc:${ssrc} cname:c`);
  }
  return [...lines, ''].join('\r\n');
}

/** A complete offer SDP for one send-only Opus track (see [`rawOffer`]). */
export function sendOnlyAudioOffer() {
  return rawOffer([{ kind: 'audio' }]);
}

/** The server's `sfu_connection_failures_total` now, by reason. */
export async function connectionFailures(server) {
  const families = parsePrometheus(await (await fetch(server.metricsUrl)).text());
  return Object.fromEntries((families.find((f) => f.name === 'sfu_connection_failures_total')?.metrics ?? [])
    .map((m) => [m.labels.reason, Number(m.value)]));
}

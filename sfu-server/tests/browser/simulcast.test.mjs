// Simulcast in real Chromium: a publisher sends three layers (q/h/f from a 1280x720 camera);
// a subscriber switches low -> medium -> high and back, seamlessly; dynacast pauses and
// restarts layers nobody needs.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  makeTempDir, startServer, launchBrowser, openParticipant, closeParticipant,
  waitFor, withDiagnostics, sleep, SIMULCAST_ARGS, getHealth,
} from './lib.mjs';

describe('simulcast: layer selection, seamless switching and dynacast', () => {
  let server;
  let browser;
  let P, S;
  let videoTrackId;
  const state = () => ({ server, participants: [P, S] });
  const check = (name, fn, timeout = 60000) => it(name, { timeout }, () => withDiagnostics(state, fn));

  before(() => withDiagnostics(state, async () => {
    const tmp = makeTempDir();
    server = await startServer(tmp);
    browser = await launchBrowser(tmp, { extraArgs: SIMULCAST_ARGS });
    P = await openParticipant(browser, server.baseUrl, { room: 'sim', name: 'P', audio: false, simulcast: true });
    S = await openParticipant(browser, server.baseUrl, { room: 'sim', name: 'S', audio: false, video: false });
    videoTrackId = await waitFor(async () => {
      const video = ((await S.participants())[P.participantId]?.tracks || []).find((t) => t.kind === 'video');
      if (!video) throw new Error('S does not list a video track of P yet');
      return video.id;
    }, 20000, 'S to learn P\'s video track id');
  }), { timeout: 90000 });

  after(async () => {
    for (const p of [P, S]) await closeParticipant(p);
    if (browser) await browser.close().catch(() => {});
    if (server) await server.stop();
  });

  /** S's inbound stats for P's video track. */
  async function inbound() {
    return (await S.inboundStats()).find((s) => s.trackId === videoTrackId);
  }

  /** P's outbound packetsSent per rid. */
  async function sentPerRid() {
    const out = {};
    for (const s of await P.outboundStats()) if (s.kind === 'video') out[s.rid] = s.packetsSent;
    return out;
  }

  // Requirement: the publisher's track is announced with its three rids; with S wanting the best
  // quality P sends f, and q (always kept); h nobody wants yet (dynacast, checked below).
  check('the track is published as simulcast q/h/f and the wanted layers flow', async () => {
    const track = (await S.participants())[P.participantId].tracks.find((t) => t.id === videoTrackId);
    assert.deepEqual(track.simulcast, ['q', 'h', 'f']);
    await waitFor(async () => {
      const sent = await sentPerRid();
      if (!(sent.q > 0 && sent.f > 0)) throw new Error(`packetsSent per rid ${JSON.stringify(sent)}`);
      return true;
    }, 20000, 'P to send q and f');
  });

  // Requirement: asking low, medium, high gives frame widths 320, 640, 1280 in turn, with `quality`
  // messages, decoding never stalling for more than 1 s across the switches.
  check('switching low -> medium -> high changes the decoded width 320 -> 640 -> 1280 without freezes', async () => {
    await waitFor(async () => (await inbound())?.framesDecoded > 0, 20000, 'S to decode P\'s video');
    let longestStallMs = 0;
    let stallPhase = '';
    let phase = 'start';
    let lastFrames = (await inbound()).framesDecoded;
    let lastChange = Date.now();
    const watch = async () => {
      const s = await inbound();
      const now = Date.now();
      if (s.framesDecoded > lastFrames) {
        lastFrames = s.framesDecoded;
        lastChange = now;
      }
      if (now - lastChange > longestStallMs) {
        longestStallMs = now - lastChange;
        stallPhase = phase;
      }
      return s;
    };
    for (const [quality, width] of [['low', 320], ['medium', 640], ['high', 1280], ['low', 320]]) {
      phase = `switch to ${quality}`;
      await S.sfu(([t, q]) => window.sfu.subscribe(t, q), [videoTrackId, quality]);
      await waitFor(async () => {
        const s = await watch();
        if (s.frameWidth !== width) throw new Error(`frameWidth ${s.frameWidth}, want ${width}`);
        return true;
      }, 15000, `S's decoded width to become ${width} after asking ${quality}`, 150);
      const reported = (await S.messages()).filter((m) => m.type === 'quality' && m.track_id === videoTrackId).at(-1);
      assert.equal(reported?.quality, quality, `last quality message for ${quality}`);
      for (let i = 0; i < 10; i++) {
        await watch();
        await sleep(150);
      }
    }
    assert.ok(longestStallMs <= 1000, `decoding stalled for ${longestStallMs} ms (${stallPhase})`);
    // Each switch starts a layer the subscriber has no decoder state for: the server asks the
    // publisher with FIR, which Chromium negotiates for VP8.
    await waitFor(async () => {
      const { counters } = await getHealth(server.baseUrl);
      if (!(counters.firs_to_publishers > 0)) throw new Error(`counters ${JSON.stringify(counters)}`);
      return true;
    }, 5000, 'the server\'s FIR count toward publishers to grow');
  });

  // Requirement: dynacast stops layers no consumer needs and restarts them when one is asked for.
  check('dynacast pauses unused layers and restarts them on demand', async () => {
    await S.sfu(([t]) => window.sfu.subscribe(t, 'low'), [videoTrackId]);
    await waitFor(async () => {
      const a = await sentPerRid();
      await sleep(1500);
      const b = await sentPerRid();
      if (!(b.q > a.q)) throw new Error(`q stopped: ${a.q} -> ${b.q}`);
      if (b.f > a.f || b.h > a.h) throw new Error(`h/f still sent: h ${a.h} -> ${b.h}, f ${a.f} -> ${b.f}`);
      return true;
    }, 15000, 'P to stop sending h and f while only low is wanted');
    await S.sfu(([t]) => window.sfu.subscribe(t, 'medium'), [videoTrackId]);
    await waitFor(async () => {
      const a = await sentPerRid();
      await sleep(1000);
      const b = await sentPerRid();
      if (!(b.h > a.h)) throw new Error(`h not restarted: ${a.h} -> ${b.h}`);
      if (b.f > a.f) throw new Error(`f sent although only medium is wanted: ${a.f} -> ${b.f}`);
      return true;
    }, 15000, 'P to send h (and not f) once medium is wanted');
    await S.sfu(([t]) => window.sfu.subscribe(t, 'high'), [videoTrackId]);
    await waitFor(async () => {
      const a = await sentPerRid();
      await sleep(1000);
      const b = await sentPerRid();
      if (!(b.f > a.f)) throw new Error(`f not restarted: ${a.f} -> ${b.f}`);
      const s = await inbound();
      if (s.frameWidth !== 1280) throw new Error(`frameWidth ${s.frameWidth}`);
      return true;
    }, 15000, 'P to send f again and S to decode 1280 wide');
  });
});

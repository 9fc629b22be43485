// Active speakers in real Chromium: the server reads the audio-level header extension of every
// audio producer, ranks speakers and sends `speakers`; the web client highlights the tile of
// whoever speaks. Chromium's fake microphone beeps, which is loud enough to count as speech;
// a muted microphone sends silence.

import { describe, it, before, after } from 'node:test';
import {
  makeTempDir, startServer, launchBrowser, openParticipant, closeParticipant,
  waitFor, withDiagnostics,
} from './lib.mjs';

describe('active speakers', () => {
  let server;
  let browser;
  let A, B;
  const state = () => ({ server, participants: [A, B] });
  const check = (name, fn, timeout = 60000) => it(name, { timeout }, () => withDiagnostics(state, fn));

  before(() => withDiagnostics(state, async () => {
    const tmp = makeTempDir();
    server = await startServer(tmp);
    browser = await launchBrowser(tmp);
    A = await openParticipant(browser, server.baseUrl, { room: 'talk', name: 'A', video: false });
    B = await openParticipant(browser, server.baseUrl, { room: 'talk', name: 'B', audio: false, video: false });
  }), { timeout: 90000 });

  after(async () => {
    for (const p of [A, B]) await closeParticipant(p);
    if (browser) await browser.close().catch(() => {});
    if (server) await server.stop();
  });

  /** The speaker list of B's last `speakers` message, or null before any. */
  async function lastSpeakers() {
    const messages = (await B.messages()).filter((m) => m.type === 'speakers');
    return messages.length ? messages.at(-1).speakers : null;
  }

  /** Whether B's page shows A's tile as speaking. */
  const tileSpeaking = () => B.page.evaluate(
    (id) => Boolean(document.querySelector(`.tile.speaking[data-speaker="${id}"]`)),
    A.participantId,
  );

  // Requirement: a participant whose microphone carries sound is announced in `speakers` with a
  // level above zero, and the web client highlights its tile.
  check('a participant making sound is listed in speakers and its tile is highlighted', async () => {
    await waitFor(async () => {
      const speakers = await lastSpeakers();
      const a = speakers?.find((s) => s.participant_id === A.participantId);
      if (!(a?.level > 0)) throw new Error(`last speakers ${JSON.stringify(speakers)}`);
      return true;
    }, 20000, 'B to be told that A speaks');
    await waitFor(async () => {
      if (!(await tileSpeaking())) throw new Error('A\'s tile on B\'s page is not highlighted');
      return true;
    }, 5000, 'A\'s tile to be highlighted');
  });

  // Requirement: when the speaker falls silent, a new `speakers` message drops it and the highlight goes.
  check('a muted participant leaves the speaker list and loses the highlight', async () => {
    await A.sfu(() => window.sfu.setMuted('audio', true));
    await waitFor(async () => {
      const speakers = await lastSpeakers();
      if (speakers?.some((s) => s.participant_id === A.participantId)) {
        throw new Error(`last speakers ${JSON.stringify(speakers)}`);
      }
      if (await tileSpeaking()) throw new Error('A\'s tile still highlighted');
      return true;
    }, 15000, 'B to be told that A stopped speaking');
  });
});

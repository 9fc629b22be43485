// Negotiation in any order, explicit subscriptions, codecs and mute, in real Chromium.
// Room n1: A joins publishing nothing and publishes later, B publishes on join, C joins with
// auto_subscribe false and publishes nothing. Room n2: P publishes H264 video to S.
// One server and one browser; at most three tabs publish at a time (the machine has 2 cores).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  makeTempDir, startServer, launchBrowser, closeBrowser, openParticipant, closeParticipant,
  waitFor, withDiagnostics, withTimeout, expectMediaFrom, publishedTracksOf, sleep,
} from './lib.mjs';

describe('negotiation', () => {
  let server;
  let browser;
  let A, B, C, P, S;
  const state = () => ({ server, participants: [A, B, C, P, S] });
  const check = (name, fn, timeout = 60000) => it(name, { timeout }, () => withDiagnostics(state, fn));

  before(() => withDiagnostics(state, async () => {
    const tmp = makeTempDir();
    server = await startServer(tmp);
    browser = await launchBrowser(tmp);
  }), { timeout: 60000 });

  after(async () => {
    for (const p of [A, B, C, P, S]) await closeParticipant(p);
    await closeBrowser(browser);
    if (server) await server.stop();
  });

  describe('room n1: late publish, unpublish, republish, mute, explicit subscriptions', () => {
    before(() => withDiagnostics(state, async () => {
      A = await openParticipant(browser, server.baseUrl, { room: 'n1', name: 'A', audio: false, video: false });
      B = await openParticipant(browser, server.baseUrl, { room: 'n1', name: 'B' });
    }), { timeout: 60000 });

    after(async () => {
      // Frees the CPU for room n2.
      for (const p of [A, B, C]) await closeParticipant(p);
    });

    // Requirement: a participant that joined without publishing receives the others' media.
    check('A joins publishing nothing and still receives B\'s video and audio', async () => {
      assert.deepEqual(await A.outboundStats(), [], 'A publishes nothing, yet has outbound-rtp');
      const bIds = await waitFor(() => publishedTracksOf(A, B), 10000, 'A to learn B\'s audio and video tracks');
      await expectOneSsrcPerTrack(A, [bIds.audioTrackId, bIds.videoTrackId]);
      await expectMediaFrom(A, [B]);
      const aAtB = (await B.participants())[A.participantId];
      assert.ok(aAtB, 'B does not list A');
      assert.deepEqual(aAtB.tracks, [], 'B sees tracks of A, who publishes nothing');
    });

    // Requirement: video is forwarded as VP8 when the publisher does not ask for another codec.
    check('VP8 by default: B\'s track.codec is "VP8" and A decodes video/VP8', async () => {
      const { videoTrackId } = await publishedTracksOf(A, B);
      const published = (await A.messages()).find((m) => m.type === 'track_published' && m.track.id === videoTrackId);
      assert.ok(published, `A got no track_published for B's video ${videoTrackId}`);
      assert.equal(published.track.codec, 'VP8', `track_published: ${JSON.stringify(published)}`);
      const inbound = await waitFor(async () => (await A.inboundStats()).find((s) => s.trackId === videoTrackId && s.codec),
        10000, `A's inbound-rtp for ${videoTrackId} to name its codec`);
      assert.equal(inbound.codec, 'video/VP8', `A's inbound video from B: ${JSON.stringify(inbound)}`);
    });

    // Requirement: publishing after joining works; the server's answer names the new tracks, the
    // others get track_published for them and receive the media.
    check('A publishes late: answer names its track ids, B gets track_published and A\'s media', async () => {
      const ids = await withTimeout(A.sfu(() => window.sfu.publish({ audio: true, video: true })), 30000, 'A: sfu.publish()');
      assert.equal(typeof ids.audio, 'string', `publish() resolved to ${JSON.stringify(ids)}`);
      assert.equal(typeof ids.video, 'string', `publish() resolved to ${JSON.stringify(ids)}`);
      assert.notEqual(ids.audio, ids.video);
      const answered = (await A.messages()).filter((m) => m.type === 'answer').flatMap((m) => Object.values(m.tracks || {}));
      for (const id of [ids.audio, ids.video]) {
        assert.ok(answered.includes(id), `no server answer to A names ${id}; answers named ${JSON.stringify(answered)}`);
      }
      await waitFor(async () => {
        for (const kind of ['audio', 'video']) {
          const m = (await B.messages()).find((x) => x.type === 'track_published' && x.track.id === ids[kind]);
          if (!m) throw new Error(`no track_published for A's ${kind} ${ids[kind]}`);
          assert.equal(m.track.participant_id, A.participantId);
          assert.equal(m.track.kind, kind);
        }
        return true;
      }, 10000, 'B to get track_published for A\'s two tracks');
      assert.deepEqual(await publishedTracksOf(B, A), { videoTrackId: ids.video, audioTrackId: ids.audio });
      await expectOneSsrcPerTrack(B, [ids.audio, ids.video]);
      await expectMediaFrom(B, [A]);
    });

    // Requirement: unpublishing one track removes it for the others (track_unpublished, media stops)
    // without disturbing the publisher's other track; publishing it again works under a new id.
    check('A unpublishes video: B gets track_unpublished, its video stops, audio flows; republished video is decoded', async () => {
      const { videoTrackId: oldVideo, audioTrackId: audio } = await publishedTracksOf(B, A);
      const oldInbound = (await B.inboundStats()).find((s) => s.trackId === oldVideo);
      assert.ok(oldInbound && oldInbound.packetsReceived > 0, `B receives no video ${oldVideo} before the unpublish`);

      await withTimeout(A.sfu(() => window.sfu.unpublish('video')), 30000, 'A: sfu.unpublish("video")');
      assert.equal(await A.sfu(() => window.sfu.localTrack('video')), null, 'A still has a local video track');
      assert.deepEqual(Object.keys(await A.sfu(() => window.sfu.localTrackIds())), ['audio']);

      await waitFor(async () => {
        const gone = (await B.messages()).some((m) => m.type === 'track_unpublished' && m.track_id === oldVideo);
        if (!gone) throw new Error('no track_unpublished yet');
        const remote = (await B.remoteTracks()).filter((t) => t.trackId === oldVideo);
        if (remote.some((t) => t.readyState !== 'ended')) throw new Error(`remote track still ${JSON.stringify(remote)}`);
        const listed = (await B.participants())[A.participantId].tracks.map((t) => t.id);
        if (listed.includes(oldVideo)) throw new Error(`B still lists ${oldVideo} for A: ${JSON.stringify(listed)}`);
        return true;
      }, 10000, `B to get track_unpublished for ${oldVideo} and end its track`);
      await expectNoMoreMedia(B, oldInbound.ssrc, `A's unpublished video ${oldVideo}`);
      await expectPacketsGrow(B, audio, `A's audio ${audio} after A unpublished video`);

      const ids = await withTimeout(A.sfu(() => window.sfu.publish({ video: true })), 30000, 'A: sfu.publish({video})');
      assert.equal(ids.audio, audio, 'publish() replaced the audio track that was already published');
      assert.equal(typeof ids.video, 'string', `publish() resolved to ${JSON.stringify(ids)}`);
      assert.notEqual(ids.video, oldVideo, 'the republished video kept the old track id');
      await waitFor(async () => (await B.messages()).some((m) => m.type === 'track_published' && m.track.id === ids.video),
        10000, `B to get track_published for A's new video ${ids.video}`);
      assert.deepEqual(await publishedTracksOf(B, A), { videoTrackId: ids.video, audioTrackId: audio });
      await expectOneSsrcPerTrack(B, [ids.video]);
      await expectMediaFrom(B, [A]);
    });

    // Requirement: a publisher's mute/unmute reaches the others as track_muted for that track.
    check('A mutes and unmutes video: B gets track_muted true then false for A\'s video id', async () => {
      const { videoTrackId } = await publishedTracksOf(B, A);
      for (const muted of [true, false]) {
        const seen = (await B.messages()).length;
        assert.equal(await A.sfu((m) => window.sfu.setMuted('video', m), muted), true, 'setMuted returned false');
        await waitFor(async () => {
          const got = (await B.messages()).slice(seen).filter((m) => m.type === 'track_muted');
          if (!got.length) throw new Error('no track_muted yet');
          assert.deepEqual(got, [{ type: 'track_muted', track_id: videoTrackId, muted }]);
          const listed = (await B.participants())[A.participantId].tracks.find((t) => t.id === videoTrackId);
          assert.equal(listed.muted, muted, `B's sfu.participants: ${JSON.stringify(listed)}`);
          return true;
        }, 10000, `B to get track_muted {${videoTrackId}, muted: ${muted}}`);
      }
    });

    // Requirement: with auto_subscribe false a participant receives nothing until it subscribes;
    // subscribe then brings exactly that track, unsubscribe removes it, unknown ids are not_found.
    check('C with autoSubscribe:false gets only what it subscribes to, until it unsubscribes', async () => {
      C = await openParticipant(browser, server.baseUrl, { room: 'n1', name: 'C', audio: false, video: false, autoSubscribe: false });
      // Who joins later sees the tracks published late and republished.
      const listed = Object.fromEntries(C.joined.participants.map((p) => [p.id, p.tracks.map((t) => t.id).sort()]));
      const aIds = await publishedTracksOf(B, A);
      assert.deepEqual(listed[A.participantId], [aIds.audioTrackId, aIds.videoTrackId].sort(), `C's joined: ${JSON.stringify(C.joined)}`);
      const { videoTrackId: bVideo, audioTrackId: bAudio } = await publishedTracksOf(C, B);

      await waitFor(() => C.sfu(() => window.sfu.channelsOpen()), 15000, 'C\'s data channels to open (C is connected)');
      await sleep(3000); // past the server's 2 s first-offer timer
      const offeredBefore = offeredTrackIds(await C.messages());
      assert.deepEqual(offeredBefore, [], 'the server offered C tracks before C subscribed');
      assert.deepEqual(await C.remoteTracks(), [], 'C received remote tracks before subscribing');
      const receiving = (await C.inboundStats()).filter((s) => s.packetsReceived > 0);
      assert.deepEqual(receiving, [], 'C receives media before subscribing');

      assert.equal(await C.sfu((id) => window.sfu.subscribe(id), bVideo), true);
      await waitFor(async () => offeredTrackIds(await C.messages()).includes(bVideo), 10000, `a server offer to C naming ${bVideo}`);
      await expectOneSsrcPerTrack(C, [bVideo]);
      await expectFramesGrow(C, bVideo, `B's video ${bVideo} after subscribing`);
      await sleep(1000);
      assert.deepEqual(offeredTrackIds(await C.messages()), [bVideo], 'C was offered tracks it did not subscribe to');
      const audio = (await C.inboundStats()).filter((s) => s.kind === 'audio' && s.packetsReceived > 0);
      assert.deepEqual(audio, [], `C receives audio (B's audio is ${bAudio}) though it subscribed to video only`);
      assert.deepEqual((await C.remoteTracks()).map((t) => t.trackId), [bVideo]);

      const ssrc = (await C.inboundStats()).find((s) => s.trackId === bVideo).ssrc;
      assert.equal(await C.sfu((id) => window.sfu.unsubscribe(id), bVideo), true);
      await waitFor(async () => {
        const remote = (await C.remoteTracks()).filter((t) => t.trackId === bVideo);
        return remote.length === 1 && remote[0].readyState === 'ended';
      }, 10000, `C's remote track ${bVideo} to end after unsubscribe`);
      await expectNoMoreMedia(C, ssrc, `B's video ${bVideo} after unsubscribe`);
      const errors = (await C.messages()).filter((m) => m.type === 'error');
      assert.deepEqual(errors, [], 'C got errors for a valid subscribe/unsubscribe');

      // Requirement: subscribing again brings the track back, also when the unsubscribe and the
      // subscribe come back to back (the server's offer stopping the track is not answered yet).
      assert.equal(await C.sfu((id) => window.sfu.subscribe(id), bVideo), true);
      await expectFramesGrow(C, bVideo, `B's video ${bVideo} subscribed again`, 10, true);
      assert.equal(await C.sfu((id) => window.sfu.unsubscribe(id) && window.sfu.subscribe(id), bVideo), true);
      await sleep(3000);
      await expectFramesGrow(C, bVideo, `B's video ${bVideo} after unsubscribe and subscribe back to back`, 10, true);
      const resubscribeErrors = (await C.messages()).filter((m) => m.type === 'error');
      assert.deepEqual(resubscribeErrors, [], 'C got errors for subscribing again');

      assert.equal(await C.sfu(() => window.sfu.subscribe('no-such-track')), true);
      await waitFor(async () => {
        const error = (await C.messages()).find((m) => m.type === 'error');
        if (!error) throw new Error('no error yet');
        assert.equal(error.code, 'not_found', JSON.stringify(error));
        return true;
      }, 5000, 'C to get error not_found for subscribing to an unknown track id');
      assert.equal(await C.sfu(() => window.sfu.state), 'joined', 'the not_found error ended C\'s session');
    });

    // Requirement: unpublishing everything leaves the participant a receiver, and leaving after it works.
    check('A unpublishes audio and video at once, keeps receiving B, then leaves', async () => {
      const aIds = await publishedTracksOf(B, A);
      await withTimeout(A.sfu(() => Promise.all([window.sfu.unpublish('audio'), window.sfu.unpublish('video')])),
        30000, 'A: sfu.unpublish("audio") and sfu.unpublish("video")');
      assert.deepEqual(await A.sfu(() => window.sfu.localTrackIds()), {});
      await waitFor(async () => {
        const gone = (await B.messages()).filter((m) => m.type === 'track_unpublished').map((m) => m.track_id);
        const missing = [aIds.audioTrackId, aIds.videoTrackId].filter((id) => !gone.includes(id));
        if (missing.length) throw new Error(`no track_unpublished for ${missing.join(', ')}`);
        assert.deepEqual((await B.participants())[A.participantId].tracks, []);
        return true;
      }, 10000, 'B to get track_unpublished for both of A\'s tracks');
      await expectMediaFrom(A, [B], { firstMediaMs: 5000 });

      await A.sfu(() => window.sfu.leave());
      await waitFor(async () => (await B.messages()).some((m) => m.type === 'participant_left' && m.participant_id === A.participantId),
        10000, 'B to get participant_left for A');
      assert.ok(!(A.participantId in await B.participants()), 'B still lists A after it left');
    });
  });

  describe('room n2: H264', () => {
    // Requirement: H264 video is forwarded: a publisher sending H264 is decoded as H264 by a subscriber.
    check('P forced to H264: track.codec "H264", S decodes it as video/H264', async () => {
      S = await openParticipant(browser, server.baseUrl, { room: 'n2', name: 'S', audio: false, video: false });
      const sendable = await S.sfu(() => RTCRtpSender.getCapabilities('video').codecs.map((c) => c.mimeType));
      assert.ok(sendable.includes('video/H264'),
        `this Chromium cannot encode H264 (RTCRtpSender.getCapabilities('video') lists ${[...new Set(sendable)].join(', ')}), ` +
        'so H264 forwarding cannot be tested: use a Chromium built with H264 (OpenH264) support');

      P = await openParticipant(browser, server.baseUrl, { room: 'n2', name: 'P', audio: false, video: true, videoCodec: 'H264' });
      const outbound = await waitFor(async () => (await P.outboundStats()).find((s) => s.kind === 'video' && s.framesEncoded > 0 && s.codec),
        20000, 'P to encode video');
      assert.equal(outbound.codec, 'video/H264',
        `P was asked for H264 but sends ${outbound.codec}: the server's answer did not accept H264 from this Chromium`);

      const published = await waitFor(async () => (await S.messages()).find(
        (m) => m.type === 'track_published' && m.track.participant_id === P.participantId && m.track.kind === 'video',
      ), 10000, 'S to get track_published for P\'s video');
      assert.equal(published.track.codec, 'H264', `track_published: ${JSON.stringify(published)}`);

      await expectOneSsrcPerTrack(S, [published.track.id]);
      await expectFramesGrow(S, published.track.id, `P's H264 video ${published.track.id}`);
      const inbound = (await S.inboundStats()).find((s) => s.trackId === published.track.id);
      assert.equal(inbound.codec, 'video/H264', `S's inbound video from P: ${JSON.stringify(inbound)}`);
    });
  });
});

/** Every track id named by the `tracks` map of any server offer in `messages`, sorted, unique. */
function offeredTrackIds(messages) {
  const ids = messages.filter((m) => m.type === 'offer').flatMap((m) => Object.values(m.tracks || {}));
  return [...new Set(ids)].sort();
}

/**
 * Each of `trackIds` must reach `viewer` as ONE stream (PROTOCOL.md: one SSRC per track), on the
 * SSRC the server signalled, never 0. Waits until every track has received packets, then checks
 * that no second inbound-rtp (e.g. RTP sent with an unsignalled SSRC on the same mid) appeared.
 */
async function expectOneSsrcPerTrack(viewer, trackIds) {
  const streamsOf = async () => {
    const stats = await viewer.inboundStats();
    return Object.fromEntries(trackIds.map((id) => [id, stats.filter((s) => s.trackId === id)]));
  };
  await waitFor(async () => Object.values(await streamsOf()).every((list) => list.some((s) => s.packetsReceived > 0)),
    20000, `${viewer.name} to receive packets of ${trackIds.join(', ')}`);
  await sleep(1000);
  for (const [id, list] of Object.entries(await streamsOf())) {
    const described = JSON.stringify(list.map((s) => ({ mid: s.mid, kind: s.kind, ssrc: s.ssrc, packetsReceived: s.packetsReceived })));
    assert.equal(list.length, 1, `${viewer.name} receives track ${id} as ${list.length} RTP streams (one SSRC per track required): ${described}`);
    assert.notEqual(list[0].ssrc, 0, `${viewer.name} receives track ${id} on SSRC 0: ${described}`);
  }
}

/** `viewer`'s inbound-rtp for `trackId` must decode frames, then at least `minFrames` more. */
async function expectFramesGrow(viewer, trackId, what, minFrames = 10, anyStream = false) {
  // anyStream: the track may have reached the viewer on several m-lines (subscribed again);
  // frames of every one count.
  const framesOf = async () => {
    const streams = (await viewer.inboundStats()).filter((s) => s.trackId === trackId);
    const frames = streams.map((s) => s.framesDecoded ?? 0);
    return anyStream ? frames.reduce((a, b) => a + b, 0) : (frames[0] ?? 0);
  };
  const start = await waitFor(framesOf, 20000, `${viewer.name} to decode first frames of ${what}`);
  await waitFor(async () => (await framesOf()) >= start + minFrames, 10000, `${viewer.name} to keep decoding ${what} (from ${start} frames)`);
}

/** `viewer`'s inbound-rtp for `trackId` must receive packets, then at least `minPackets` more. */
async function expectPacketsGrow(viewer, trackId, what, minPackets = 10) {
  const packetsOf = async () => (await viewer.inboundStats()).find((s) => s.trackId === trackId)?.packetsReceived ?? 0;
  const start = await waitFor(packetsOf, 10000, `${viewer.name} to receive packets of ${what}`);
  await waitFor(async () => (await packetsOf()) >= start + minPackets, 10000, `${viewer.name} to keep receiving ${what} (from ${start} packets)`);
}

/** The inbound stream `ssrc` at `viewer` must be gone or stop growing (checked over 2 s). */
async function expectNoMoreMedia(viewer, ssrc, what) {
  const packetsOf = async () => (await viewer.inboundStats()).find((s) => s.ssrc === ssrc)?.packetsReceived ?? null;
  await waitFor(async () => {
    const before = await packetsOf();
    await sleep(2000);
    const now = await packetsOf();
    if (now !== null && now > before) throw new Error(`packetsReceived of ssrc ${ssrc} grew ${before} -> ${now}`);
    return true;
  }, 10000, `${viewer.name} to stop receiving ${what}`);
}

'use strict';

/*
 * The SFU's client library, with no DOM of its own.
 *
 * SfuClient speaks the signaling protocol (signaling/PROTOCOL.md) and owns the single
 * RTCPeerConnection that carries the local tracks, every remote track and both data channels.
 * A page builds its UI on it (app.js is ours, and exposes it as window.sfu, the API the
 * browser tests use: sfu-server/web/CONTRACT.md), reading the object and listening to its
 * events: 'change' (state, participants, tracks or channels changed), 'status'
 * ({text, error}), 'data' (a received data channel message), 'speakers' (the server's
 * speaker list).
 */

const PING_INTERVAL_MS = 15000;
/** Reconnections tried after a lost signaling connection before giving up. */
const RESUME_ATTEMPTS = 5;
const RESUME_RETRY_MS = 1000;

// How long publish()/unpublish() wait for the server's answer that completes their change.
const ANSWER_TIMEOUT_MS = 20000;
// How long after an offer refused as over the offer rate it is made again.
const OFFER_RETRY_MS = 1000;

const MEDIA_KINDS = ['audio', 'video'];

const DATA_CHANNELS = {
  reliable: { ordered: true },
  lossy: { ordered: false, maxRetransmits: 0 },
};

// Simulcast layers of camera video (the `simulcast` join option, on by default), lowest first (rids from PROTOCOL.md).
const SIMULCAST_ENCODINGS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'f', maxBitrate: 1500000 },
];

// Server message type -> SfuClient method. Types not listed (pong, quality, ...) are only recorded.
const SERVER_HANDLERS = {
  joined: '_onJoined',
  participant_joined: '_onParticipantJoined',
  participant_left: '_onParticipantLeft',
  track_published: '_onTrackPublished',
  track_unpublished: '_onTrackUnpublished',
  track_muted: '_onTrackMuted',
  offer: '_onOffer',
  answer: '_onAnswer',
  candidate: '_onCandidate',
  speakers: '_onSpeakers',
  layers: '_onLayers',
  error: '_onError',
  leave: '_onLeave',
  redirect: '_onRedirect',
};

// How many times one join follows a `redirect` to the node that owns the room.
const MAX_REDIRECTS = 3;

// Whether `url` is a WebSocket URL (ws: or wss:), the only kind a redirect may name.
function isWebSocketUrl(url) {
  try {
    return ['ws:', 'wss:'].includes(new URL(url).protocol);
  } catch {
    return false;
  }
}

function signalingUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

function numberOrZero(value) {
  return typeof value === 'number' ? value : 0;
}

function describeError(err) {
  return err && err.message ? err.message : String(err);
}

function normalizeParticipant(participant) {
  return { ...participant, tracks: participant.tracks || [] };
}

// With simulcast the camera is asked for 720p, so q/h/f are 320/640/1280 wide
// (browsers send all three layers only from 720p up).
const SIMULCAST_CAPTURE = { width: { ideal: 1280 }, height: { ideal: 720 } };

async function captureMedia(audio, video, simulcast) {
  if (!audio && !video) return new MediaStream();
  if (!navigator.mediaDevices) {
    throw new Error('camera and microphone need a secure context (https or localhost)');
  }
  return navigator.mediaDevices.getUserMedia({ audio, video: video && simulcast ? SIMULCAST_CAPTURE : video });
}

// The m-sections of an SDP as comparable text: kind, rejection, mid, direction, msid and simulcast.
function sectionSummary(sdp) {
  return sdp.split(/\r\n(?=m=)/).slice(1).map((section) => {
    const lines = section.split('\r\n');
    const [kind, port] = lines[0].split(' ');
    const wanted = (line) => /^a=(mid:|msid:|simulcast:|sendrecv$|sendonly$|recvonly$|inactive$)/.test(line);
    return [kind, port === '0' ? 'rejected' : '', ...lines.filter(wanted)].join(' ');
  }).join('\n');
}

// The mimeType of the codec report an rtp stats entry names through `codecId`, or null.
function codecMimeType(report, stats) {
  return (stats.codecId && report.get(stats.codecId)?.mimeType) || null;
}

// A transceiver that currently receives media from the server.
function isReceiving(transceiver) {
  return transceiver.currentDirection === 'recvonly' || transceiver.currentDirection === 'sendrecv';
}

class SfuClient extends EventTarget {
  constructor() {
    super();
    this.room = null;
    this.name = null;
    this.state = 'idle';
    this.messages = [];
    this.dataMessages = [];
    this.log = [];
    this._resetSession(); // participantId, participants, localStream and the private session state
  }

  // ---- Test-facing API (CONTRACT.md) ----

  async join({
    room, name, token, autoSubscribe = true, audio = true, video = true, simulcast = true, videoCodec = null,
    iceTransportPolicy = 'all',
  } = {}) {
    if (this.state === 'joining' || this.state === 'joined') {
      throw new Error(`cannot join while ${this.state}`);
    }
    this._resetSession();
    this.room = room;
    this.name = name;
    this._simulcast = simulcast;
    this._videoCodec = videoCodec;
    this._iceTransportPolicy = iceTransportPolicy;
    this._setState('joining', `Joining room ${room}…`);
    try {
      this.localStream = await this._captureWhileJoining(audio, video);
      this._emit('change');
      for (let redirects = 0; ; redirects++) {
        await this._connect();
        try {
          return await this._sendJoin({ room, name, token, autoSubscribe });
        } catch (err) {
          if (!err.redirect || redirects >= MAX_REDIRECTS) throw err;
          this._signalingUrl = err.redirect;
          this._log(`room ${room} lives on another node: joining at ${err.redirect}`);
        }
      }
    } catch (err) {
      this._teardown(`Join failed: ${describeError(err)}`, true);
      throw err;
    }
  }

  leave() {
    if (this.state !== 'joining' && this.state !== 'joined') return;
    this.send({ type: 'leave' });
    this._teardown('Left the room');
  }

  // Captures and sends the asked kinds that are not published yet, then offers. Resolves to
  // {kind: track id} for the asked kinds once a server answer names the new tracks.
  async publish({ audio = true, video = true } = {}) {
    this._requireJoined('publish');
    const session = this._session;
    const asked = MEDIA_KINDS.filter((kind) => ({ audio, video })[kind]);
    const missing = asked.filter((kind) => !this._isPublishing(kind));
    if (missing.length) {
      const stream = await captureMedia(missing.includes('audio'), missing.includes('video'), this._simulcast);
      const tracks = stream.getTracks();
      if (session !== this._session || this.state !== 'joined') {
        tracks.forEach((track) => track.stop());
        throw new Error('publish cancelled: the session ended');
      }
      // Another publish() may have sent a kind while we waited for the camera: keep its track.
      const fresh = tracks.filter((track) => !this._isPublishing(track.kind));
      tracks.filter((track) => !fresh.includes(track)).forEach((track) => track.stop());
      for (const track of fresh) await this._sendTrack(track);
      this._log(`publishing ${missing.join(' and ')}`);
      this._emit('change');
      await this._waitForAnswer(`publish ${missing.join('+')}`, (answered) => (
        missing.every((kind) => this._answerNamesTrack(answered, kind))
      ));
    }
    return Object.fromEntries(asked.map((kind) => [kind, this._localTrackIds[kind] ?? null]));
  }

  // Stops sending `kind`: the transceiver goes inactive (a later publish reuses it), the capture
  // stops, and the promise resolves once a server answer no longer lists the track.
  async unpublish(kind) {
    this._requireJoined('unpublish');
    const transceiver = this._sendTransceivers[kind];
    const track = transceiver?.sender.track;
    if (!track) return;
    await transceiver.sender.replaceTrack(null);
    transceiver.direction = 'inactive'; // fires negotiationneeded: the offer makes the m-line inactive
    track.stop();
    this.localStream.removeTrack(track);
    delete this._localTrackIds[kind];
    this._log(`unpublishing ${kind}`);
    this._emit('change');
    await this._waitForAnswer(`unpublish ${kind}`, (answered) => {
      const current = this._sendTransceivers[kind];
      // Done when the answer drops the mid, or when a publish() of this kind superseded us.
      return !current || Boolean(current.sender.track) || current.mid === null || !(current.mid in answered);
    });
  }

  send(message) {
    if (!this._ws || this._ws.readyState !== WebSocket.OPEN) return false;
    this._ws.send(JSON.stringify(message));
    return true;
  }

  // kind -> the id the server gave the track we publish of that kind (only published kinds).
  localTrackIds() {
    return { ...this._localTrackIds };
  }

  sendData(label, text) {
    const channel = this._channels[label];
    if (!channel || channel.readyState !== 'open') return false;
    channel.send(text);
    return true;
  }

  channelsOpen() {
    return Object.keys(DATA_CHANNELS).every((label) => this._channels[label]?.readyState === 'open');
  }

  remoteTracks() {
    return this._remoteEntries.map((entry) => ({
      trackId: entry.trackId,
      participantId: entry.participantId,
      kind: entry.kind,
      readyState: entry.ended ? 'ended' : entry.track.readyState,
    }));
  }

  async inboundStats() {
    const reports = await this._statsOfType('inbound-rtp');
    return reports.map(({ report, codec }) => {
      const mid = report.mid ?? this._midOfReceiverTrack(report.trackIdentifier);
      const trackId = this._remoteTrackMap[mid] ?? null;
      return {
        trackId,
        participantId: this._publisherOf(trackId),
        kind: report.kind ?? report.mediaType,
        mid,
        codec,
        ssrc: numberOrZero(report.ssrc),
        packetsReceived: numberOrZero(report.packetsReceived),
        bytesReceived: numberOrZero(report.bytesReceived),
        framesDecoded: numberOrZero(report.framesDecoded),
        frameWidth: numberOrZero(report.frameWidth),
        frameHeight: numberOrZero(report.frameHeight),
        nackCount: numberOrZero(report.nackCount),
        packetsLost: numberOrZero(report.packetsLost),
        retransmittedPacketsReceived: numberOrZero(report.retransmittedPacketsReceived),
      };
    });
  }

  async outboundStats() {
    const reports = await this._statsOfType('outbound-rtp');
    return reports.map(({ report, codec }) => {
      const kind = report.kind ?? report.mediaType;
      return {
        kind,
        mid: report.mid ?? this._midOfSenderKind(kind),
        rid: report.rid ?? null,
        codec,
        packetsSent: numberOrZero(report.packetsSent),
        bytesSent: numberOrZero(report.bytesSent),
        framesEncoded: numberOrZero(report.framesEncoded),
        frameWidth: numberOrZero(report.frameWidth),
        active: report.active ?? true,
      };
    });
  }

  setMuted(kind, muted) {
    const track = this.localTrack(kind);
    if (!track) return false;
    track.enabled = !muted;
    const trackId = this._localTrackIds[kind];
    // Without an id yet, the mute is sent once the server's answer names the track.
    if (trackId) this.send({ type: 'mute', track_id: trackId, muted });
    this._log(`local ${kind} ${muted ? 'muted' : 'unmuted'}`);
    this._emit('change');
    return true;
  }

  subscribe(trackId, quality = 'auto', paused = false) {
    return this.send({ type: 'subscribe', track_id: trackId, quality, paused });
  }

  unsubscribe(trackId) {
    return this.send({ type: 'unsubscribe', track_id: trackId });
  }

  // ---- Helpers for the UI ----

  localTrack(kind) {
    return this.localStream?.getTracks().find((track) => track.kind === kind) ?? null;
  }

  // Remote tracks currently playing: {trackId, participantId, kind, track}, stable objects.
  remoteMedia() {
    return this._remoteEntries.filter((entry) => !entry.ended);
  }

  // ---- Session lifecycle ----

  _resetSession() {
    this.participantId = null;
    this.participants = {};
    this.localStream = null;
    this._session = (this._session || 0) + 1; // queued negotiation steps of older sessions are dropped
    this._ws = null;
    this._signalingUrl = signalingUrl(); // another node's, once a join was redirected there
    this._pc = null;
    this._iceServers = [];
    this._channels = {};
    this._queue = Promise.resolve();
    this._needsOffer = false;
    this._remoteTrackMap = {}; // mid -> track id, from the latest server offer
    this._localTrackIds = {}; // kind -> track id of our published track, from server answers
    this._sendTransceivers = {}; // kind -> our sendonly transceiver (kept, inactive, after unpublish)
    this._answerWaiters = []; // publish()/unpublish() calls waiting for a server answer
    this._remoteEntries = []; // every remote track seen, see _addRemoteEntry
    this._pingTimer = null;
    this._pendingJoin = null;
    this._resumeToken = null; // from `joined`: takes the participant back after a lost connection
    this._resuming = null; // {resolve, reject} while a `resume` waits for its `joined`
    this._resumeInProgress = false;
    this._simulcast = false;
    this._videoCodec = null;
  }

  _requireJoined(what) {
    if (this.state !== 'joined' || !this._pc) throw new Error(`cannot ${what} while ${this.state}`);
  }

  // getUserMedia may outlast a leave() (e.g. a pending permission prompt): then the join is abandoned.
  async _captureWhileJoining(audio, video) {
    const stream = await captureMedia(audio, video, this._simulcast);
    if (this.state !== 'joining') {
      stream.getTracks().forEach((track) => track.stop());
      throw new Error('join cancelled');
    }
    return stream;
  }

  _connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this._signalingUrl);
      this._ws = ws;
      ws.onopen = () => {
        this._log('signaling connected');
        resolve();
      };
      ws.onmessage = (event) => this._onSocketMessage(event.data);
      ws.onclose = (event) => {
        reject(new Error('signaling connection closed'));
        if (this._ws === ws) this._onSocketClosed(event);
      };
    });
  }

  // Sends `join`; the promise settles on `joined` (see _onJoined) or on an error/close before it.
  _sendJoin({ room, name, token, autoSubscribe }) {
    return new Promise((resolve, reject) => {
      this._pendingJoin = { resolve, reject };
      const message = { type: 'join', room, name, auto_subscribe: autoSubscribe };
      if (token) message.token = token;
      this.send(message);
    });
  }

  // The room lives on another node: the join is retried there (see join). The socket, which
  // the server closes, is detached first so that its closing does not end the session.
  _onRedirect(message) {
    const pending = this._pendingJoin;
    if (!pending) return;
    this._pendingJoin = null;
    const ws = this._ws;
    this._ws = null;
    ws?.close();
    // Only to another signaling WebSocket: the join (and its token) is sent again there.
    if (!isWebSocketUrl(message.url)) {
      pending.reject(new Error(`refused a redirect to ${message.url}: not a ws: or wss: URL`));
      return;
    }
    pending.reject(Object.assign(new Error(`redirected to ${message.url}`), { redirect: message.url }));
  }

  _onSocketClosed(event) {
    this._log(`signaling closed (code ${event.code})`);
    if (this._pendingJoin) {
      this._pendingJoin.reject(new Error('signaling connection closed'));
    } else if (this._resumeInProgress) {
      this._resuming?.reject(new Error('signaling connection closed'));
    } else if (this.state === 'joined' && this._resumeToken) {
      this._resume();
    } else {
      this._teardown('Disconnected from the server', true);
    }
  }

  // The signaling connection dropped while joined: reconnect and `resume` (the peer connection,
  // and so the media, carries on meanwhile). Gives up, and leaves, after RESUME_ATTEMPTS.
  async _resume() {
    const session = this._session;
    clearInterval(this._pingTimer);
    this._resumeInProgress = true;
    try {
      await this._resumeAttempts(session);
    } finally {
      this._resumeInProgress = false;
    }
  }

  async _resumeAttempts(session) {
    for (let attempt = 1; attempt <= RESUME_ATTEMPTS; attempt++) {
      if (this._session !== session || this.state !== 'joined') return;
      this._log(`signaling lost: resuming (attempt ${attempt})`);
      try {
        await this._connect();
        await new Promise((resolve, reject) => {
          this._resuming = { resolve, reject };
          this.send({ type: 'resume', resume_token: this._resumeToken });
        });
        this._resuming = null;
        this._startPing();
        this._log(`resumed as ${this.participantId}`);
        this._offerAgainAfterResume();
        this._emit('resumed');
        return;
      } catch (err) {
        this._resuming = null;
        this._log(`resume failed: ${describeError(err)}`);
        if (err.code === 'not_found') break; // the participant is gone: nothing to resume

        await new Promise((r) => setTimeout(r, RESUME_RETRY_MS));
      }
    }
    if (this._session === session) {
      this._resumeInProgress = false;
      this._teardown('Disconnected from the server', true);
    }
  }

  // An offer sent just before the connection dropped may never have reached the server, or its
  // answer was lost with the connection: the same offer goes again on the new connection. A
  // server that already applied it answers it again, unchanged, so nothing is rolled back.
  _offerAgainAfterResume() {
    this._enqueue('offer again after resume', async (pc) => {
      if (pc.signalingState !== 'have-local-offer') return;
      this._log('offer unanswered when the connection dropped: sending it again');
      this.send({ type: 'offer', sdp: pc.localDescription.sdp });
    });
  }

  // Ends the session: stops pinging, closes socket, pc and camera, forgets the room. Idempotent.
  _teardown(reason, isError = false) {
    if (this.state !== 'joining' && this.state !== 'joined') return;
    clearInterval(this._pingTimer);
    const ws = this._ws;
    this._ws = null; // detaches the close handler from this session before closing
    if (ws) ws.close();
    if (this._pc) this._pc.close();
    this._pc = null;
    this.localStream?.getTracks().forEach((track) => track.stop());
    this._endRemoteTracks(() => true);
    this.participants = {};
    this._channels = {};
    if (this._pendingJoin) this._pendingJoin.reject(new Error(reason));
    this._pendingJoin = null;
    for (const waiter of [...this._answerWaiters]) this._settleWaiter(waiter, new Error(reason));
    this._log(`session ended: ${reason}`);
    this._setState('left', reason, isError);
  }

  _startPing() {
    this._pingTimer = setInterval(() => this.send({ type: 'ping', ts: Date.now() }), PING_INTERVAL_MS);
  }

  // ---- Server messages ----

  _onSocketMessage(raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch (err) {
      this._log(`unparseable server message: ${describeError(err)}`);
      return;
    }
    this.messages.push(message);
    const handler = SERVER_HANDLERS[message.type];
    if (handler) this[handler](message);
  }

  _onJoined(message) {
    if (this._resuming) {
      this._onResumed(message);
      return;
    }
    if (!this._pendingJoin) return;
    this._resumeToken = message.resume_token ?? null;
    this.participantId = message.participant_id;
    this.room = message.room;
    this.participants = Object.fromEntries(
      (message.participants || []).map((p) => [p.id, normalizeParticipant(p)]),
    );
    // Built synchronously so that a server offer right after `joined` finds the pc.
    this._iceServers = message.ice_servers || [];
    this._setUpPeerConnection();
    this._startPing();
    this._log(`joined room ${this.room} as ${this.participantId}`);
    this._setState('joined', `In room ${this.room} as ${this.name}`);
    this._pendingJoin.resolve(message);
    this._pendingJoin = null;
  }

  // `joined` after `resume`: same participant, so the peer connection stays; the room may have
  // changed while we were away, so our view of it is rebuilt from the message.
  _onResumed(message) {
    if (message.participant_id !== this.participantId) {
      this._resuming.reject(new Error(`resumed as ${message.participant_id}, not ${this.participantId}`));
      return;
    }
    this._resumeToken = message.resume_token ?? this._resumeToken;
    const now = Object.fromEntries((message.participants || []).map((p) => [p.id, normalizeParticipant(p)]));
    for (const id of Object.keys(this.participants)) {
      if (!now[id]) this._onParticipantLeft({ participant_id: id });
    }
    const liveTracks = new Set(Object.values(now).flatMap((p) => p.tracks.map((t) => t.id)));
    this._endRemoteTracks((entry) => !liveTracks.has(entry.trackId));
    this.participants = now;
    this._emit('change');
    this._resuming.resolve(message);
  }

  _onParticipantJoined({ participant }) {
    if (participant.id === this.participantId) return;
    this.participants[participant.id] = normalizeParticipant(participant);
    this._emit('change');
  }

  _onParticipantLeft({ participant_id: participantId }) {
    delete this.participants[participantId];
    this._endRemoteTracks((entry) => entry.participantId === participantId);
    this._emit('change');
  }

  _onTrackPublished({ track }) {
    const owner = this.participants[track.participant_id];
    if (!owner) return; // our own track, or a participant we don't know
    owner.tracks = owner.tracks.filter((t) => t.id !== track.id).concat(track);
    this._emit('change');
  }

  _onTrackUnpublished({ track_id: trackId }) {
    for (const participant of Object.values(this.participants)) {
      participant.tracks = participant.tracks.filter((t) => t.id !== trackId);
    }
    this._endRemoteTracks((entry) => entry.trackId === trackId);
    this._emit('change');
  }

  _onTrackMuted({ track_id: trackId, muted }) {
    const track = this._publishedTrack(trackId);
    if (track) track.muted = muted;
    this._emit('change');
  }

  _onOffer(message) {
    this._log('received server offer');
    this._enqueue('answer server offer', (pc) => this._answerServerOffer(pc, message));
  }

  _onAnswer(message) {
    this._log('received server answer');
    this._enqueue('apply server answer', (pc) => this._applyServerAnswer(pc, message));
  }

  // A null candidate means end-of-candidates, which addIceCandidate() without argument signals.
  _onCandidate({ candidate }) {
    this._enqueue('add remote candidate', (pc) => (
      candidate ? pc.addIceCandidate(candidate) : pc.addIceCandidate()
    ));
  }

  // Dynacast: send exactly the simulcast encodings the server says someone receives.
  async _onLayers({ track_id: trackId, rids }) {
    const kind = Object.keys(this._localTrackIds).find((k) => this._localTrackIds[k] === trackId);
    const transceiver = kind && this._sendTransceivers && this._sendTransceivers[kind];
    if (!transceiver) return;
    const params = transceiver.sender.getParameters();
    if (!params.encodings || params.encodings.length < 2) return;
    for (const encoding of params.encodings) encoding.active = rids.includes(encoding.rid);
    try {
      await transceiver.sender.setParameters(params);
      this._log(`layers: sending ${rids.join(',') || 'none'} of ${trackId}`);
    } catch (err) {
      this._log(`layers: setParameters failed: ${describeError(err)}`);
    }
  }

  _onSpeakers({ speakers }) {
    this._emit('speakers', speakers || []);
  }

  _onError({ code, message, refused }) {
    const text = `Error (${code}): ${message}`;
    this._log(text);
    const error = Object.assign(new Error(text), { code });
    if (this._pendingJoin) this._pendingJoin.reject(error);
    if (this._resuming) this._resuming.reject(error);
    if (refused === 'offer' && code === 'rate_limited' && this._pc && this._pc.signalingState === 'have-local-offer') {
      // The server ignored our offer (too many at once): withdraw it and offer again shortly.
      this._enqueue('withdraw refused offer', async (pc) => {
        if (pc.signalingState !== 'have-local-offer') return;
        await this._withdrawOwnOffer(pc, `offer refused (${code})`);
        this._log(`offering again in ${OFFER_RETRY_MS} ms`);
        setTimeout(() => this._requestOffer('retry after rate_limited'), OFFER_RETRY_MS);
      });
    }
    this._setStatus(text, true);
  }

  _onLeave({ reason }) {
    this._teardown(`Removed from the room: ${reason}`, true);
  }

  // ---- Peer connection ----

  // The pc with our tracks and both data channels; its negotiationneeded event makes the first offer.
  _setUpPeerConnection() {
    this._createPeerConnection();
    this._publishLocalMedia();
    this._openDataChannels();
  }

  _createPeerConnection() {
    // max-bundle: everything on one transport, so trickled candidates all belong to the first m-line.
    const pc = new RTCPeerConnection({
      iceServers: this._iceServers, iceTransportPolicy: this._iceTransportPolicy, bundlePolicy: 'max-bundle',
    });
    this._pc = pc;
    pc.onnegotiationneeded = () => this._requestOffer('negotiationneeded');
    pc.onicecandidate = ({ candidate }) => {
      this.send({ type: 'candidate', candidate: candidate ? candidate.toJSON() : null });
    };
    pc.ontrack = (event) => this._onTrack(event);
    pc.onsignalingstatechange = () => this._log(`signalingState: ${pc.signalingState}`);
    pc.onicegatheringstatechange = () => this._log(`iceGatheringState: ${pc.iceGatheringState}`);
    pc.oniceconnectionstatechange = () => this._log(`iceConnectionState: ${pc.iceConnectionState}`);
    pc.onconnectionstatechange = () => {
      this._log(`connectionState: ${pc.connectionState}`);
      const failed = pc.connectionState === 'failed';
      this._setStatus(`In room ${this.room} as ${this.name}, media ${pc.connectionState}`, failed);
    };
  }

  _publishLocalMedia() {
    this._sendTransceivers = {};
    for (const track of this.localStream.getTracks()) this._addSendTransceiver(track);
  }

  _addSendTransceiver(track) {
    const init = { direction: 'sendonly', streams: [this.localStream] };
    if (track.kind === 'video' && this._simulcast) {
      init.sendEncodings = SIMULCAST_ENCODINGS.map((encoding) => ({ ...encoding }));
    }
    const transceiver = this._pc.addTransceiver(track, init);
    if (track.kind === 'video') this._preferVideoCodec(transceiver);
    this._sendTransceivers[track.kind] = transceiver;
  }

  // A track captured by publish(): sent on our transceiver of its kind left inactive by unpublish()
  // (same m-line, the server gives it a new track id), or on a new transceiver.
  async _sendTrack(track) {
    this.localStream.addTrack(track);
    const transceiver = this._sendTransceivers[track.kind];
    if (!transceiver || transceiver.currentDirection === 'stopped') {
      this._addSendTransceiver(track);
      return;
    }
    await transceiver.sender.replaceTrack(track);
    transceiver.sender.setStreams(this.localStream);
    transceiver.direction = 'sendonly';
  }

  _isPublishing(kind) {
    return Boolean(this._sendTransceivers[kind]?.sender.track);
  }

  // Offers only the chosen codec (and its retransmission format) on the video m-line, so the
  // server's answer leaves the browser nothing else to send. Skipped if the browser cannot send it.
  _preferVideoCodec(transceiver) {
    const wanted = this._videoCodec;
    if (!wanted || typeof transceiver.setCodecPreferences !== 'function') return;
    const codecs = RTCRtpSender.getCapabilities('video')?.codecs ?? [];
    const preferred = codecs.filter((codec) => codec.mimeType.toLowerCase() === `video/${wanted}`.toLowerCase());
    if (!preferred.length) {
      this._log(`this browser cannot send ${wanted} video; using its default codec`);
      return;
    }
    const rtx = codecs.filter((codec) => codec.mimeType.toLowerCase() === 'video/rtx');
    try {
      transceiver.setCodecPreferences([...preferred, ...rtx]);
      this._log(`video codec preference: ${wanted}`);
    } catch (err) {
      this._log(`cannot prefer ${wanted}: ${describeError(err)}`);
    }
  }

  _openDataChannels() {
    for (const [label, options] of Object.entries(DATA_CHANNELS)) {
      const channel = this._pc.createDataChannel(label, options);
      channel.onopen = () => this._onChannelStateChange(channel);
      channel.onclose = () => this._onChannelStateChange(channel);
      channel.onmessage = (event) => this._onDataMessage(label, event.data);
      this._channels[label] = channel;
    }
  }

  // Channels of a replaced pc (see _withdrawOwnOffer) or of an ended session are not reported.
  _onChannelStateChange(channel) {
    if (this._channels[channel.label] !== channel) return;
    this._log(`data channel ${channel.label} ${channel.readyState}`);
    this._emit('change');
  }

  // Relayed messages are {"from": participant id, "data": text}; anything else is kept as raw text.
  _onDataMessage(label, raw) {
    if (typeof raw !== 'string') {
      this._log(`ignored binary message on ${label}`);
      return;
    }
    let parsed = null;
    try {
      parsed = JSON.parse(raw);
    } catch {
      this._log(`non-JSON message on ${label}`);
    }
    const message = parsed && typeof parsed === 'object'
      ? { label, from: parsed.from ?? null, data: parsed.data ?? '' }
      : { label, from: null, data: raw };
    this.dataMessages.push(message);
    this._emit('data', message);
  }

  // ---- Negotiation (perfect negotiation, this client being the polite peer) ----

  // Runs negotiation steps strictly one after another, each on the pc current when it runs.
  // Steps queued in an earlier session (before a leave and a new join) are skipped.
  _enqueue(label, step) {
    if (!this._pc) {
      this._log(`${label}: no peer connection, ignored`);
      return;
    }
    const session = this._session;
    this._queue = this._queue
      .then(() => (session === this._session && this._pc ? step(this._pc) : undefined))
      .catch((err) => this._log(`${label} failed: ${describeError(err)}`));
  }

  _requestOffer(reason) {
    this._log(`offer needed (${reason})`);
    this._needsOffer = true;
    this._enqueue('send offer', (pc) => this._offerIfNeeded(pc));
  }

  // Offers pending local changes. While an offer is outstanding or a server offer is being answered
  // the flag stays set; the step runs again after the server's answer or after our own answer.
  async _offerIfNeeded(pc) {
    if (!this._needsOffer || pc.signalingState !== 'stable') return;
    this._needsOffer = false;
    this._log('creating offer');
    const offer = await pc.createOffer();
    // A browser may keep asking for negotiation that its offers never contain (Chromium after some
    // rollbacks); repeating the last negotiated offer would loop forever, so it is not sent.
    const last = pc.currentLocalDescription;
    if (last && last.type === 'offer' && sectionSummary(last.sdp) === sectionSummary(offer.sdp)) {
      this._log('offer would change nothing, not sent');
      return;
    }
    await pc.setLocalDescription(offer);
    this.send({ type: 'offer', sdp: pc.localDescription.sdp });
    this._log('sent offer');
  }

  async _answerServerOffer(currentPc, { sdp, tracks }) {
    const glare = currentPc.signalingState === 'have-local-offer';
    const pc = glare ? await this._withdrawOwnOffer(currentPc, 'glare') : currentPc;
    // Set before applying the offer: ontrack fires during setRemoteDescription and needs the map.
    this._remoteTrackMap = tracks || {};
    await pc.setRemoteDescription({ type: 'offer', sdp });
    this._log('applied server offer');
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    this.send({ type: 'answer', sdp: pc.localDescription.sdp });
    this._log('sent answer');
    this._syncRemoteTracks(pc);
    await this._offerIfNeeded(pc);
  }

  // Drops our outstanding offer, to be made again (after answering, on glare: the server ignores
  // our offer then). Before anything was negotiated the pc is replaced instead of rolled back,
  // because Chromium never offers the data channels again after a rollback of the offer that
  // introduced them. Returns the pc to use.
  async _withdrawOwnOffer(pc, why) {
    this._needsOffer = true;
    if (!pc.currentRemoteDescription) {
      this._log(`${why} before the first negotiation: replacing the peer connection`);
      pc.close();
      this._setUpPeerConnection();
      this._emit('change');
      return this._pc;
    }
    this._log(`${why}: rolling back own offer`);
    await pc.setLocalDescription({ type: 'rollback' });
    return pc;
  }

  async _applyServerAnswer(pc, { sdp, tracks }) {
    if (pc.signalingState !== 'have-local-offer') {
      this._log(`ignored server answer in signalingState ${pc.signalingState}`);
      return;
    }
    await pc.setRemoteDescription({ type: 'answer', sdp });
    this._log('applied server answer');
    this._storeLocalTrackIds(pc, tracks || {});
    this._settleAnswerWaiters(tracks || {});
    await this._offerIfNeeded(pc);
  }

  // A promise settled by the first applied server answer for which isDone(answer.tracks) holds
  // (see _settleAnswerWaiters), or rejected after ANSWER_TIMEOUT_MS or when the session ends.
  _waitForAnswer(what, isDone) {
    return new Promise((resolve, reject) => {
      const waiter = { isDone, resolve, reject };
      waiter.timer = setTimeout(() => {
        this._settleWaiter(waiter, new Error(`${what}: no server answer completed it within ${ANSWER_TIMEOUT_MS} ms`));
      }, ANSWER_TIMEOUT_MS);
      this._answerWaiters.push(waiter);
    });
  }

  _settleAnswerWaiters(tracks) {
    for (const waiter of [...this._answerWaiters]) {
      if (waiter.isDone(tracks)) this._settleWaiter(waiter);
    }
  }

  _settleWaiter(waiter, error = null) {
    clearTimeout(waiter.timer);
    this._answerWaiters = this._answerWaiters.filter((w) => w !== waiter);
    if (error) waiter.reject(error);
    else waiter.resolve();
  }

  // Whether a server answer's tracks map names the track we now send of `kind`.
  _answerNamesTrack(tracks, kind) {
    const transceiver = this._sendTransceivers[kind];
    return Boolean(transceiver?.sender.track && transceiver.mid !== null && tracks[transceiver.mid]);
  }

  // Records the ids the server gave our tracks (answer map mid -> track id, resolved to the kind of
  // the track we send on that mid). A track muted before its id was known is announced now.
  _storeLocalTrackIds(pc, tracks) {
    for (const transceiver of pc.getTransceivers()) {
      const trackId = transceiver.mid === null ? undefined : tracks[transceiver.mid];
      const track = transceiver.sender.track;
      if (!trackId || !track) continue;
      const isNew = this._localTrackIds[track.kind] !== trackId;
      this._localTrackIds[track.kind] = trackId;
      this._log(`local ${track.kind} track is ${trackId} (mid ${transceiver.mid})`);
      if (isNew && !track.enabled) this.send({ type: 'mute', track_id: trackId, muted: true });
    }
  }

  // ---- Remote tracks ----

  _onTrack({ track, transceiver, streams }) {
    const trackId = this._remoteTrackMap[transceiver.mid] ?? null;
    // The server's msid names the publisher as the stream id; the tracks map is the fallback.
    const participantId = streams[0]?.id ?? this._publisherOf(trackId);
    this._log(`ontrack: ${track.kind} mid=${transceiver.mid} track=${trackId} from=${participantId}`);
    this._addRemoteEntry(transceiver, track, trackId, participantId);
  }

  // One entry per (receiver track, track id): a transceiver reused for another track gets a new one.
  _addRemoteEntry(transceiver, track, trackId, participantId) {
    const exists = this._remoteEntries.some(
      (entry) => !entry.ended && entry.track === track && entry.trackId === trackId,
    );
    if (exists) return;
    const entry = { trackId, participantId, kind: track.kind, track, transceiver, ended: false };
    this._remoteEntries.push(entry);
    track.addEventListener('ended', () => this._endRemoteTracks((e) => e === entry));
    this._emit('change');
  }

  // Runs after answering a server offer, whose map names every mid the server sends on: an entry
  // whose mid no longer maps to its track has ended (m-line made inactive or rejected), whatever
  // the browser's track events did; a receiving mid mapped to an unseen track gets an entry.
  _syncRemoteTracks(pc) {
    const stillMapped = (entry) => (this._remoteTrackMap[entry.transceiver.mid] ?? null) === entry.trackId;
    this._endRemoteTracks((entry) => !stillMapped(entry));
    for (const transceiver of pc.getTransceivers()) {
      const trackId = transceiver.mid === null ? undefined : this._remoteTrackMap[transceiver.mid];
      if (trackId && isReceiving(transceiver)) {
        this._addRemoteEntry(transceiver, transceiver.receiver.track, trackId, this._publisherOf(trackId));
      }
    }
  }

  _endRemoteTracks(predicate) {
    const ending = this._remoteEntries.filter((entry) => !entry.ended && predicate(entry));
    for (const entry of ending) {
      entry.ended = true;
      this._log(`remote ${entry.kind} track ${entry.trackId} ended`);
    }
    if (ending.length) this._emit('change');
  }

  _publisherOf(trackId) {
    if (!trackId) return null;
    const entry = this._remoteEntries.find((e) => e.trackId === trackId && e.participantId);
    if (entry) return entry.participantId;
    const owner = Object.values(this.participants).find((p) => p.tracks.some((t) => t.id === trackId));
    return owner ? owner.id : null;
  }

  _publishedTrack(trackId) {
    for (const participant of Object.values(this.participants)) {
      const track = participant.tracks.find((t) => t.id === trackId);
      if (track) return track;
    }
    return null;
  }

  // ---- Stats ----

  // Reports of one type, each as {report, codec} with the mimeType of the codec it names.
  async _statsOfType(type) {
    if (!this._pc) return [];
    const all = await this._pc.getStats();
    const matching = [];
    all.forEach((stats) => {
      if (stats.type === type) matching.push({ report: stats, codec: codecMimeType(all, stats) });
    });
    return matching;
  }

  // Fallbacks for browsers whose rtp stats have no `mid`.
  _midOfReceiverTrack(trackIdentifier) {
    if (!this._pc || !trackIdentifier) return null;
    const transceiver = this._pc.getTransceivers().find((t) => t.receiver.track.id === trackIdentifier);
    return transceiver ? transceiver.mid : null;
  }

  _midOfSenderKind(kind) {
    if (!this._pc) return null;
    const transceiver = this._pc.getTransceivers().find((t) => t.sender.track?.kind === kind);
    return transceiver ? transceiver.mid : null;
  }

  // ---- State, status, log ----

  _setState(state, statusText, isError = false) {
    this.state = state;
    this._emit('change');
    this._setStatus(statusText, isError);
  }

  _setStatus(text, error = false) {
    this._emit('status', { text, error });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _log(text) {
    const line = `${new Date().toISOString().slice(11, 23)} ${text}`;
    this.log.push(line);
    console.log(`[sfu] ${line}`);
  }
}

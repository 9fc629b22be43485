'use strict';

/*
 * The web client's page: the join form, tiles (local preview and one per remote
 * participant), controls and chat, built on SfuClient (sfu-client.js, loaded before this).
 */

/* ---------------------------------------------------------------------------------------------
 * UI: join form, tiles (local preview and one per remote participant), controls, chat.
 * ------------------------------------------------------------------------------------------- */

const dom = {};
const mediaElements = new Map(); // remote media entry -> its <video>/<audio> element
let playbackAwaitsClick = false;
let publishingBusy = false; // a publish/unpublish from the buttons is under way

function initUi(sfu) {
  // Element ids in kebab-case become camelCase keys of `dom` ('join-form' -> dom.joinForm).
  for (const id of ['status', 'join-form', 'room', 'name', 'use-audio', 'use-video', 'join', 'call',
    'toggle-mic', 'toggle-camera', 'publish', 'unpublish', 'leave', 'tiles', 'chat-log', 'chat-form', 'chat-input', 'chat-send']) {
    dom[id.replace(/-(\w)/g, (_, c) => c.toUpperCase())] = document.getElementById(id);
  }
  const params = new URLSearchParams(location.search);
  prefillForm(params);

  dom.joinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    joinFromForm(sfu, params);
  });
  dom.toggleMic.addEventListener('click', () => toggleLocal(sfu, 'audio'));
  dom.toggleCamera.addEventListener('click', () => toggleLocal(sfu, 'video'));
  dom.publish.addEventListener('click', () => changePublishing(sfu, () => sfu.publish({ audio: true, video: true })));
  dom.unpublish.addEventListener('click', () => changePublishing(
    sfu, () => Promise.all(MEDIA_KINDS.map((kind) => sfu.unpublish(kind))),
  ));
  dom.leave.addEventListener('click', () => sfu.leave());
  dom.chatForm.addEventListener('submit', (event) => {
    event.preventDefault();
    sendChat(sfu);
  });

  sfu.addEventListener('change', () => render(sfu));
  sfu.addEventListener('status', ({ detail }) => showStatus(detail.text, detail.error));
  sfu.addEventListener('data', ({ detail }) => {
    appendChat(senderName(sfu, detail.from), detail.data, detail.label);
  });
  sfu.addEventListener('speakers', ({ detail }) => highlightSpeakers(detail));
  render(sfu);

  if (params.get('autojoin') === '1' && dom.joinForm.checkValidity()) joinFromForm(sfu, params);
}

function prefillForm(params) {
  dom.room.value = params.get('room') ?? dom.room.value;
  dom.name.value = params.get('name') ?? dom.name.value;
  if (params.get('audio') === '0') dom.useAudio.checked = false;
  if (params.get('video') === '0') dom.useVideo.checked = false;
}

// Joins with the form's values; `token`, `simulcast=1`, `codec=H264|VP8` and `relay=1` (TURN
// relay only) can only come from the URL.
async function joinFromForm(sfu, params) {
  dom.join.disabled = true;
  dom.chatLog.replaceChildren();
  try {
    await sfu.join({
      room: dom.room.value.trim(),
      name: dom.name.value.trim(),
      token: params.get('token') || undefined,
      audio: dom.useAudio.checked,
      video: dom.useVideo.checked,
      simulcast: params.get('simulcast') !== '0',
      videoCodec: params.get('codec') || null,
      iceTransportPolicy: params.get('relay') === '1' ? 'relay' : 'all',
    });
  } catch {
    // The client already shows the failure in the status line.
  } finally {
    dom.join.disabled = false;
  }
}

function toggleLocal(sfu, kind) {
  const track = sfu.localTrack(kind);
  if (track) sfu.setMuted(kind, track.enabled);
}

// Runs a publish/unpublish from the buttons, one at a time.
async function changePublishing(sfu, change) {
  publishingBusy = true;
  render(sfu);
  try {
    await change();
  } catch (err) {
    showStatus(`Publishing failed: ${describeError(err)}`, true);
  } finally {
    publishingBusy = false;
    render(sfu);
  }
}

function sendChat(sfu) {
  const text = dom.chatInput.value.trim();
  if (!text) return;
  if (!sfu.sendData('reliable', text)) {
    showStatus('Chat is not connected yet', true);
    return;
  }
  appendChat('me', text, 'reliable');
  dom.chatInput.value = '';
}

function showStatus(text, isError = false) {
  dom.status.textContent = text;
  dom.status.classList.toggle('error', isError);
}

function render(sfu) {
  const inCall = sfu.state === 'joining' || sfu.state === 'joined';
  dom.joinForm.hidden = inCall;
  dom.call.hidden = !inCall;
  renderToggle(dom.toggleMic, sfu.localTrack('audio'), 'mic');
  renderToggle(dom.toggleCamera, sfu.localTrack('video'), 'camera');
  const sending = MEDIA_KINDS.filter((kind) => sfu.localTrack(kind));
  dom.publish.disabled = publishingBusy || sfu.state !== 'joined' || sending.length === MEDIA_KINDS.length;
  dom.unpublish.disabled = publishingBusy || sfu.state !== 'joined' || sending.length === 0;
  dom.chatSend.disabled = !sfu.channelsOpen();
  if (inCall) {
    renderLocalTile(sfu);
    renderRemoteTiles(sfu);
  } else {
    dom.tiles.replaceChildren();
    mediaElements.clear();
  }
}

function renderToggle(button, track, what) {
  const muted = Boolean(track) && !track.enabled;
  button.disabled = !track;
  button.textContent = `${muted ? 'Unmute' : 'Mute'} ${what}`;
  button.setAttribute('aria-pressed', String(muted));
}

function renderLocalTile(sfu) {
  const tile = ensureTile('local', `${sfu.name} (you)`);
  tile.classList.add('local');
  tile.dataset.speaker = sfu.participantId ?? '';
  const camera = sfu.localTrack('video');
  let video = tile.querySelector('video');
  if (!camera) {
    if (video) video.remove();
    return;
  }
  if (!video) {
    video = createVideo(sfu.localStream);
    video.muted = true; // the preview must never play our own microphone back
    tile.querySelector('.media').append(video);
  }
  if (video.srcObject !== sfu.localStream) video.srcObject = sfu.localStream;
  video.classList.toggle('off', !camera.enabled);
}

// Reconciles remote tiles with sfu.participants and the live remote tracks: one tile per
// publisher (also for a track whose publisher is not, or no longer, in the participant list).
function renderRemoteTiles(sfu) {
  const live = sfu.remoteMedia();
  const ids = new Set(Object.keys(sfu.participants));
  live.forEach((media) => ids.add(tileKey(media)));

  for (const [media, element] of mediaElements) {
    if (!live.includes(media)) {
      element.remove();
      mediaElements.delete(media);
    }
  }
  for (const tile of [...dom.tiles.querySelectorAll('.tile.remote')]) {
    if (!ids.has(tile.dataset.participant)) tile.remove();
  }
  for (const id of ids) {
    const tile = ensureTile(id, sfu.participants[id]?.name ?? id);
    tile.classList.add('remote');
    tile.dataset.speaker = id;
  }
  for (const media of live) {
    if (!mediaElements.has(media)) attachRemoteMedia(findTile(tileKey(media)), media);
  }
  for (const [media, element] of mediaElements) {
    element.classList.toggle('off', isPublisherMuted(sfu, media.trackId));
  }
}

function tileKey(media) {
  return media.participantId ?? 'unknown';
}

function findTile(key) {
  return [...dom.tiles.children].find((tile) => tile.dataset.participant === key) ?? null;
}

function ensureTile(key, label) {
  let tile = findTile(key);
  if (!tile) {
    tile = document.createElement('figure');
    tile.className = 'tile';
    tile.dataset.participant = key;
    const media = document.createElement('div');
    media.className = 'media';
    const caption = document.createElement('figcaption');
    caption.className = 'label';
    tile.append(media, caption);
    dom.tiles.append(tile);
  }
  tile.querySelector('.label').textContent = label;
  return tile;
}

function attachRemoteMedia(tile, media) {
  const stream = new MediaStream([media.track]);
  const element = media.kind === 'video' ? createVideo(stream) : createAudio(stream);
  element.muted = false;
  element.dataset.trackId = media.trackId ?? '';
  tile.querySelector('.media').append(element);
  mediaElements.set(media, element);
  playMedia(element);
}

function createVideo(stream) {
  const video = document.createElement('video');
  video.autoplay = true;
  video.setAttribute('playsinline', ''); // no fullscreen takeover on iOS Safari
  video.srcObject = stream;
  return video;
}

function createAudio(stream) {
  const audio = document.createElement('audio');
  audio.autoplay = true;
  audio.srcObject = stream;
  return audio;
}

// Autoplay with sound may be refused without a user gesture (e.g. after ?autojoin=1):
// then the next click anywhere starts every remote element.
function playMedia(element) {
  element.play().catch((err) => {
    if (err.name !== 'NotAllowedError' || playbackAwaitsClick) return;
    playbackAwaitsClick = true;
    showStatus('Click anywhere to start playback');
    document.addEventListener('click', () => {
      playbackAwaitsClick = false;
      mediaElements.forEach((el) => el.play().catch(() => {}));
    }, { once: true });
  });
}

function isPublisherMuted(sfu, trackId) {
  return Object.values(sfu.participants).some(
    (p) => p.tracks.some((t) => t.id === trackId && t.muted),
  );
}

function highlightSpeakers(speakers) {
  const speaking = new Set(speakers.filter((s) => s.level > 0).map((s) => s.participant_id));
  for (const tile of dom.tiles.children) {
    tile.classList.toggle('speaking', speaking.has(tile.dataset.speaker));
  }
}

function senderName(sfu, participantId) {
  return sfu.participants[participantId]?.name ?? participantId ?? 'unknown';
}

function appendChat(from, text, label) {
  const line = document.createElement('li');
  const who = document.createElement('strong');
  who.textContent = `${from}: `;
  line.append(who, String(text));
  if (label !== 'reliable') line.classList.add(label);
  dom.chatLog.append(line);
  dom.chatLog.scrollTop = dom.chatLog.scrollHeight;
}

window.sfu = new SfuClient();
initUi(window.sfu);

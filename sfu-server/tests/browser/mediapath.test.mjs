// Media-path liveness: a participant that negotiates but never connects ICE, and participants
// whose media path dies mid-call (all UDP dropped in a private network namespace), are removed
// after ice_connect_timeout_secs with `leave` `timeout`, the room is told, and each failure is
// counted by reason in sfu_connection_failures_total.

import { it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { connectionFailures, makeTempDir, startServer, waitFor, sendOnlyAudioOffer } from './lib.mjs';
import { runInNetns } from './netns.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

async function rawClient(server, room, name) {
  const ws = new WebSocket(server.wsUrl);
  const messages = [];
  ws.on('message', (data) => messages.push(JSON.parse(data.toString())));
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  ws.send(JSON.stringify({ type: 'join', room, name }));
  const joined = await waitFor(() => messages.find((m) => m.type === 'joined'), 5000, `${name} joined`);
  return { ws, messages, id: joined.participant_id };
}

// Requirement: a participant whose ICE never connects after negotiating is removed with
// `leave` `timeout` once ice_connect_timeout_secs pass; the room is told; counted by reason.
it('removes a participant whose ICE never connects', { timeout: 30000 }, async () => {
  const tmp = makeTempDir();
  const config = path.join(tmp, 'connect.toml');
  fs.writeFileSync(config, 'ice_connect_timeout_secs = 2\n');
  const server = await startServer(tmp, { extraArgs: ['--config', config] });
  try {
    const silent = await rawClient(server, 'ice', 'silent');
    const sentAt = Date.now();
    silent.ws.send(JSON.stringify({ type: 'offer', sdp: sendOnlyAudioOffer() }));
    await waitFor(() => silent.messages.some((m) => m.type === 'answer'), 5000, 'an answer to the offer');
    // The watcher never connects either: it joins a second later, to be removed a second later.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const watcher = await rawClient(server, 'ice', 'watcher');
    const leave = await waitFor(() => silent.messages.find((m) => m.type === 'leave'), 10000, 'leave for the silent participant');
    const after = Date.now() - sentAt;
    assert.deepEqual(leave, { type: 'leave', reason: 'timeout' });
    assert.ok(after >= 1500 && after < 8000, `removed ${after} ms after its offer (timeout 2 s)`);
    await waitFor(() => watcher.messages.some((m) => m.type === 'participant_left' && m.participant_id === silent.id), 5000, 'the room told');
    assert.equal((await connectionFailures(server)).ice_connect_timeout, 1);
    watcher.ws.close();
  } finally {
    await server.stop();
  }
});

// Requirement: participants whose media path dies mid-call (ICE disconnected) are removed
// after the timeout with `leave` `timeout` (a participant joining then sees neither), counted
// as media_path_lost.
it('removes participants whose media path dies', { timeout: 120000 }, async () => {
  const result = await runInNetns(path.join(here, 'mediapath-call.mjs'), [], ['cut']);
  assert.equal(result.error, undefined, `scenario failed: ${result.error}\nstate: ${JSON.stringify(result.state)}\n${result.log}`);
  console.log(`media path cut: ${JSON.stringify(result)}`);
  assert.deepEqual(result.leave_a, { type: 'leave', reason: 'timeout' });
  assert.deepEqual(result.leave_b, { type: 'leave', reason: 'timeout' });
  assert.deepEqual(result.c_sees, [], 'a participant joining after their removal sees neither');
  assert.equal(result.failures.media_path_lost, 2, JSON.stringify(result.failures));
  assert.equal(result.participants, 1, 'only the watcher is left');
  // ICE notices the dead path when no consent check has come for 15 s; the participant is
  // removed ice_connect_timeout_secs (3 s) later.
  assert.ok(result.removed_after_ms >= 3000 && result.removed_after_ms <= 25000,
    `removed ${result.removed_after_ms} ms after the cut (expected about 15 s + 3 s)`);
});

// Requirement: a media path that drops long enough for ICE to report it disconnected, then
// comes back, keeps both participants: the connect timeout stops once ICE is connected
// again, so nobody is told to leave and nothing is counted as a failure.
it('keeps participants whose media path comes back', { timeout: 120000 }, async () => {
  const result = await runInNetns(path.join(here, 'mediapath-call.mjs'), [], ['blip']);
  assert.equal(result.error, undefined, `scenario failed: ${result.error}\nstate: ${JSON.stringify(result.state)}\n${result.log}`);
  console.log(`media path blip: ${JSON.stringify(result)}`);
  assert.equal(result.leave_a, null, 'A stays');
  assert.equal(result.leave_b, null, 'B stays');
  assert.ok(result.decoded_after > result.decoded_before, 'B decodes A again');
  assert.equal(result.failures.media_path_lost, 0, JSON.stringify(result.failures));
  assert.equal(result.participants, 2);
});

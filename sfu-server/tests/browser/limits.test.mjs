// Limits: rooms per server, participants per room, messages per second, SDP size and tracks
// per participant, each answered with its error code while the server keeps serving.
// (Raw WebSocket clients; the limits come from a config file.)

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { makeTempDir, startServer, waitFor, sleep, getHealth } from './lib.mjs';

async function client(server) {
  const ws = new WebSocket(server.wsUrl);
  const messages = [];
  ws.on('message', (data) => messages.push(JSON.parse(data.toString())));
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const next = (type) => waitFor(() => messages.find((m) => m.type === type) || Promise.reject(new Error(`no ${type}`)), 5000, type);
  return { ws, messages, next, send: (m) => ws.send(JSON.stringify(m)) };
}

async function joined(server, room) {
  const c = await client(server);
  c.send({ type: 'join', room, name: 'n' });
  await waitFor(() => c.messages.length > 0 || Promise.reject(new Error('no reply')), 5000, 'join reply');
  return c;
}

const offer = (sections) => ['v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0',
  ...sections.flatMap((kind, i) => [`m=${kind} 9 UDP/TLS/RTP/SAVPF 96`, 'c=IN IP4 0.0.0.0', `a=mid:${i}`, 'a=sendonly']), ''].join('\r\n');

describe('limits', () => {
  let server;
  const clients = [];
  before(async () => {
    const tmp = makeTempDir();
    const config = path.join(tmp, 'limits.toml');
    fs.writeFileSync(config, [
      'max_rooms = 2', 'max_participants_per_room = 2', 'max_messages_per_second = 5',
      'max_tracks_per_participant = 1', 'max_sdp_bytes = 2048', '',
    ].join('\n'));
    server = await startServer(tmp, { extraArgs: ['--config', config] });
  });
  after(async () => {
    for (const c of clients) c.ws.close();
    if (server) await server.stop();
  });

  // Requirement: the room after max_rooms and the participant after max_participants_per_room get `room_full`.
  it('refuses rooms and participants over their limits', async () => {
    const a = await joined(server, 'r1');
    const b = await joined(server, 'r1');
    const c = await joined(server, 'r2');
    clients.push(a, b, c);
    for (const x of [a, b, c]) assert.equal(x.messages[0].type, 'joined');
    const third = await joined(server, 'r1');
    assert.equal(third.messages[0].code, 'room_full');
    assert.match(third.messages[0].message, /full|limit/);
    const newRoom = await joined(server, 'r3');
    assert.equal(newRoom.messages[0].code, 'room_full');
    assert.match(newRoom.messages[0].message, /2 rooms/);
  });

  // Requirement: messages over max_messages_per_second are dropped with one `rate_limited` error,
  // and the connection keeps working afterwards.
  it('rate-limits a flooding client', async () => {
    const c = clients[2];
    for (let i = 0; i < 30; i++) c.send({ type: 'ping', ts: i });
    await sleep(1000);
    const pongs = c.messages.filter((m) => m.type === 'pong').length;
    const limited = c.messages.filter((m) => m.type === 'error' && m.code === 'rate_limited');
    assert.ok(pongs >= 5 && pongs < 30, `${pongs} pongs for 30 pings`);
    assert.equal(limited.length, 1, 'one error for the whole burst');
    await sleep(1200);
    c.send({ type: 'ping', ts: 99 });
    await waitFor(() => c.messages.some((m) => m.type === 'pong' && m.ts === 99) || Promise.reject(new Error('no pong')), 3000, 'pong after the burst');
    const health = await getHealth(server.baseUrl);
    assert.ok(health.counters.messages_rate_limited >= 20, JSON.stringify(health.counters));
  });

  // Requirement: an SDP over max_sdp_bytes and an offer with more tracks than allowed get `too_large`.
  it('refuses oversized SDP and too many tracks', async () => {
    const c = clients[0];
    const big = offer(['audio']) + `a=x-pad:${'p'.repeat(3000)}\r\n`;
    c.send({ type: 'offer', sdp: big });
    await waitFor(() => c.messages.some((m) => m.type === 'error' && m.code === 'too_large' && /sdp/.test(m.message)) || Promise.reject(new Error('no error')), 5000, 'sdp too large');
    c.send({ type: 'offer', sdp: offer(['audio', 'video']) });
    await waitFor(() => c.messages.some((m) => m.type === 'error' && m.code === 'too_large' && /2 tracks/.test(m.message)) || Promise.reject(new Error('no error')), 5000, 'too many tracks');
    assert.ok(!c.messages.some((m) => m.type === 'answer'));
  });
});

// ICE over TCP: in a private network namespace that drops every UDP packet, a call still
// flows because the server also listens for ICE-TCP (--ice-tcp) and advertises a passive
// TCP candidate; both participants' selected candidate pairs are TCP.

import { it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { dropUdp, runInNetns } from './netns.mjs';
import { makeTempDir, startServer, getHealth, waitFor } from './lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

// Requirement: a participant whose UDP is blocked still gets media, over TCP.
it('a call flows over ICE-TCP when UDP is blocked', { timeout: 120000 }, async () => {
  const result = await runInNetns(path.join(here, 'icetcp-call.mjs'), dropUdp('noudp'));
  assert.equal(result.error, undefined, `scenario failed: ${result.error}\n${result.log}`);
  console.log(`ice-tcp result: ${JSON.stringify({ ...result, counters: undefined })}`);
  assert.match(result.ice_tcp ?? '', /^127\.0\.0\.1:\d+$/, 'the server printed its ICE-TCP address');
  assert.ok(result.frames_in_5s >= 25, `${result.frames_in_5s} frames decoded in 5 s over TCP`);
  // Chromium's active TCP candidate connects from an ephemeral port, so the server learns
  // it as peer-reflexive.
  assert.match(result.a_pair, /^tcp\//, `A's selected pair: ${result.a_pair}`);
  assert.match(result.b_pair, /^tcp\//, `B's selected pair: ${result.b_pair}`);
  assert.equal(result.counters.tcp_refused, 0);
  assert.ok(result.counters.rtp_forwarded > 0, 'the server forwarded media');
  // ICE-TCP ingress is counted as such (METRICS.md), not as UDP datagrams.
  assert.ok(result.counters.tcp_received > 100, `tcp_received ${result.counters.tcp_received}`);
  assert.ok(result.counters.tcp_received_bytes > result.counters.tcp_received);
});

// Requirement: a TCP connection whose first frame is not a STUN check for a known participant
// is closed and counted; the server keeps serving.
it('refuses ICE-TCP connections that do not name a participant', { timeout: 30000 }, async () => {
  const server = await startServer(makeTempDir(), { extraArgs: ['--ice-tcp', '127.0.0.1:0'] });
  try {
    const [host, port] = server.iceTcpAddr.split(':');
    const unknownUser = Buffer.concat([Buffer.from([0, 1, 0, 16, 0x21, 0x12, 0xa4, 0x42]), Buffer.alloc(12, 7),
      Buffer.from([0, 6, 0, 12]), Buffer.from('nobody00:xyz')]);
    const frames = [
      Buffer.concat([Buffer.from([0, unknownUser.length]), unknownUser]),
      Buffer.concat([Buffer.from([0, 40]), Buffer.alloc(40, 0xab)]),
    ];
    for (const frame of frames) {
      const socket = net.connect(Number(port), host);
      const closed = new Promise((resolve) => socket.once('close', resolve));
      socket.on('error', () => {});
      socket.write(frame);
      await closed;
    }
    await waitFor(async () => (await getHealth(server.baseUrl)).counters.tcp_refused === 2, 5000, 'both connections counted as refused');
    assert.equal((await getHealth(server.baseUrl)).status, 'ok');
  } finally {
    await server.stop();
  }
});

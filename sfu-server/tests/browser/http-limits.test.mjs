// HTTP and pre-join limits: request headers must arrive within 10 s (slowloris); a socket
// that has not joined may send only 16 KiB (it cannot make the server hold a large frame
// for it) and one over that gets `too_large`; a frame over the read limit after joining
// gets `too_large` instead of a silently dropped connection; connections and unjoined
// sockets are capped per client address (in a private network namespace, where the client
// is not loopback). (Raw TCP and WebSocket clients.)

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir, startServer, waitFor } from './lib.mjs';
import { runInNetns } from './netns.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

/** A raw TCP connection to the server; `closed` resolves when the server closes it. */
function connect(server) {
  const [host, port] = [server.httpAddr.slice(0, server.httpAddr.lastIndexOf(':')), Number(server.httpAddr.split(':').pop())];
  const socket = net.connect({ host, port });
  let received = Buffer.alloc(0);
  socket.on('data', (d) => { received = Buffer.concat([received, d]); });
  socket.on('error', () => {});
  const closed = new Promise((resolve) => socket.once('close', resolve));
  return { socket, closed, received: () => received };
}

/** A masked client frame header for a text frame of `length` bytes, and its mask. */
function frameHeader(length) {
  const mask = crypto.randomBytes(4);
  let header;
  if (length < 126) header = Buffer.from([0x81, 0x80 | length]);
  else if (length < 65536) { header = Buffer.alloc(4); header[0] = 0x81; header[1] = 0x80 | 126; header.writeUInt16BE(length, 2); }
  else { header = Buffer.alloc(10); header[0] = 0x81; header[1] = 0x80 | 127; header.writeBigUInt64BE(BigInt(length), 2); }
  return { header: Buffer.concat([header, mask]), mask };
}

function masked(payload, mask) {
  return Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
}

/** Opens /ws on a raw socket; resolves once the 101 arrives. */
async function rawWebSocket(server) {
  const c = connect(server);
  await new Promise((resolve) => c.socket.once('connect', resolve));
  c.socket.write(`GET /ws HTTP/1.1\r\nHost: ${server.httpAddr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
    + `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  await waitFor(() => c.received().includes('\r\n\r\n'), 5000, 'the upgrade', 20);
  assert.match(c.received().toString(), /^HTTP\/1.1 101/);
  return c;
}

/** The JSON text messages in what a raw socket received after the upgrade. */
function textMessages(bytes) {
  let rest = bytes.subarray(bytes.indexOf('\r\n\r\n') + 4);
  const out = [];
  while (rest.length >= 2) {
    let length = rest[1] & 0x7f;
    let start = 2;
    if (length === 126) { length = rest.readUInt16BE(2); start = 4; } else if (length === 127) { length = Number(rest.readBigUInt64BE(2)); start = 10; }
    if (rest.length < start + length) break;
    if ((rest[0] & 0x0f) === 1) out.push(JSON.parse(rest.subarray(start, start + length).toString()));
    rest = rest.subarray(start + length);
  }
  return out;
}

describe('HTTP and pre-join limits', () => {
  let server;
  before(async () => { server = await startServer(makeTempDir()); });
  after(async () => { if (server) await server.stop(); });

  // Requirement: a client that never finishes its request headers is cut off after the
  // header timeout (10 s), instead of holding its connection for good, and is counted.
  it('closes connections whose headers never complete', { timeout: 40000 }, async () => {
    const slow = Array.from({ length: 5 }, () => connect(server));
    for (const c of slow) c.socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    const started = Date.now();
    await Promise.race([Promise.all(slow.map((c) => c.closed)), new Promise((resolve) => setTimeout(resolve, 20000))]);
    const open = slow.filter((c) => !c.socket.destroyed && c.socket.readyState !== 'closed').length;
    assert.equal(open, 0, `${open} of 5 half-sent requests still open after ${Date.now() - started} ms`);
    assert.ok(Date.now() - started >= 8000, 'not cut off before the timeout');
    const metrics = await (await fetch(server.metricsUrl)).text();
    const hits = Number(metrics.match(/sfu_limits_hit_total\{limit="header_timeout"\} (\d+)/)?.[1]);
    assert.ok(hits >= 5, `header timeouts counted: ${hits}`);
  });

  // Requirement: before `join` a socket may send 16 KiB at most: the start of a 1 MB frame
  // gets `too_large` and the socket closes, instead of the server buffering the frame.
  it('refuses a large frame before join', async () => {
    const c = await rawWebSocket(server);
    const { header, mask } = frameHeader(1024 * 1024);
    c.socket.write(Buffer.concat([header, masked(Buffer.alloc(100 * 1024, 0x61), mask)]));
    await Promise.race([c.closed, new Promise((resolve) => setTimeout(resolve, 5000))]);
    const replies = textMessages(c.received());
    assert.equal(replies[0]?.code, 'too_large', JSON.stringify(replies));
    assert.match(replies[0].message, /before `join`/);
    assert.ok(c.socket.destroyed || c.socket.readyState === 'closed', 'the socket is closed');
  });

  // Requirement: a frame over the read limit after join gets `too_large` before the close.
  it('answers a frame over the read limit with too_large', async () => {
    const c = await rawWebSocket(server);
    const join = Buffer.from(JSON.stringify({ type: 'join', room: 'big', name: 'n' }));
    let { header, mask } = frameHeader(join.length);
    c.socket.write(Buffer.concat([header, masked(join, mask)]));
    await waitFor(() => textMessages(c.received()).some((m) => m.type === 'joined'), 5000, 'joined', 20);
    ({ header, mask } = frameHeader(3 * 1024 * 1024));
    c.socket.write(Buffer.concat([header, masked(Buffer.alloc(3 * 1024 * 1024, 0x61), mask)]));
    await Promise.race([c.closed, new Promise((resolve) => setTimeout(resolve, 5000))]);
    const error = textMessages(c.received()).find((m) => m.type === 'error');
    assert.equal(error?.code, 'too_large', JSON.stringify(textMessages(c.received())));
  });
});

// Requirement: one client address holds at most max_http_connections_per_ip connections and
// max_unjoined_connections_per_ip unjoined sockets; more are closed / refused with 503,
// counted, and a place given back is free again.
it('caps connections per client address', { timeout: 60000 }, async () => {
  const result = await runInNetns(path.join(here, 'http-limits-call.mjs'), [
    'ip link add v0 type veth peer name v1',
    'ip addr add 10.201.0.1/24 dev v0',
    'ip link set v0 up',
    'ip link set v1 up',
  ]);
  assert.equal(result.error, undefined, `scenario failed: ${result.error}\n${result.log}`);
  console.log(`per-address caps: ${JSON.stringify(result)}`);
  assert.deepEqual(result.connections, { held: 4, fifthClosed: true, afterOneClosed: 'open' });
  assert.deepEqual(result.unjoined, [101, 101, 503]);
  assert.ok(result.counted.http_connections_per_ip >= 1);
  assert.ok(result.counted.unjoined_connections_per_ip >= 1);
});

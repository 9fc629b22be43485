// Graceful shutdown: on SIGTERM every client is told `leave` with reason `shutdown` before
// the server closes its rooms and exits, within its 5 s grace period, with status 0.

import { it } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import {
  makeTempDir, startServer, launchBrowser, openParticipant, closeParticipant, waitFor, withDiagnostics,
} from './lib.mjs';

/** A raw signaling client that joins `room` and records every message. */
async function rawClient(server, room) {
  const ws = new WebSocket(server.wsUrl);
  const messages = [];
  ws.on('message', (data) => messages.push(JSON.parse(data.toString())));
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  ws.send(JSON.stringify({ type: 'join', room, name: 'raw' }));
  await waitFor(() => messages.some((m) => m.type === 'joined') || Promise.reject(new Error('not joined')), 5000, 'raw client joined');
  const closed = new Promise((resolve) => ws.once('close', resolve));
  return { ws, messages, closed };
}

// Requirement: SIGTERM tells every participant `leave`/`shutdown`, closes their sockets, and the
// process exits 0 within the grace period.
it('SIGTERM tells everyone and exits within the grace period', { timeout: 90000 }, async () => {
  let server;
  let browser;
  let A;
  await withDiagnostics(() => ({ server, participants: [A] }), async () => {
    const tmp = makeTempDir();
    server = await startServer(tmp);
    browser = await launchBrowser(tmp);
    A = await openParticipant(browser, server.baseUrl, { room: 'bye', name: 'A', video: false });
    const raw = await rawClient(server, 'bye');
    const other = await rawClient(server, 'elsewhere');
    const started = Date.now();
    server.proc.kill('SIGTERM');
    const { code, signal } = await server.exited;
    const tookMs = Date.now() - started;
    assert.equal(signal, null, 'exited by itself, not killed');
    assert.equal(code, 0);
    assert.ok(tookMs < 6000, `took ${tookMs} ms`);
    await raw.closed;
    await other.closed;
    for (const client of [raw, other]) {
      assert.deepEqual(client.messages.filter((m) => m.type === 'leave'), [{ type: 'leave', reason: 'shutdown' }]);
    }
    await waitFor(async () => {
      const leave = (await A.messages()).find((m) => m.type === 'leave');
      if (leave?.reason !== 'shutdown') throw new Error(`leave ${JSON.stringify(leave)}`);
      return true;
    }, 5000, 'the browser participant to be told shutdown');
  }).finally(async () => {
    await closeParticipant(A);
    if (browser) await browser.close().catch(() => {});
    if (server) await server.stop();
  });
});

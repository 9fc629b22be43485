// Liveness and churn: a signaling client that stops answering pings is removed with
// `timeout` while a live one stays; hundreds of joins and leaves leave nothing behind.
// (Raw WebSocket clients; the idle timeout comes from a config file.)

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import parsePrometheus from 'parse-prometheus-text-format';
import { makeTempDir, startServer, waitFor, getHealth } from './lib.mjs';

const IDLE_SECS = 3;

async function joined(server, room, options = {}) {
  const ws = new WebSocket(server.wsUrl, options);
  const messages = [];
  ws.on('message', (data) => messages.push(JSON.parse(data.toString())));
  const closed = new Promise((resolve) => ws.once('close', resolve));
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  ws.send(JSON.stringify({ type: 'join', room, name: 'n' }));
  await waitFor(() => messages.some((m) => m.type === 'joined') || Promise.reject(new Error('not joined')), 10000, 'joined');
  return { ws, messages, closed };
}

async function rssBytes(server) {
  const text = await (await fetch(server.metricsUrl)).text();
  const family = parsePrometheus(text).find((f) => f.name === 'process_resident_memory_bytes');
  return Number(family.metrics[0].value);
}

describe('liveness', () => {
  let server;
  before(async () => {
    const tmp = makeTempDir();
    const config = path.join(tmp, 'live.toml');
    fs.writeFileSync(config, `ws_idle_timeout_secs = ${IDLE_SECS}\n`);
    server = await startServer(tmp, { extraArgs: ['--config', config] });
  });
  after(async () => { if (server) await server.stop(); });

  // Requirement: a client that answers no pings is told `leave` with reason `timeout` and removed
  // from its room (its peers are told); one that answers stays.
  it('removes a silent signaling client and keeps a live one', { timeout: 30000 }, async () => {
    const live = await joined(server, 'idle');
    const silent = await joined(server, 'idle', { autoPong: false });
    await silent.closed;
    assert.deepEqual(silent.messages.filter((m) => m.type === 'leave'), [{ type: 'leave', reason: 'timeout' }]);
    await waitFor(() => live.messages.some((m) => m.type === 'participant_left') || Promise.reject(new Error('no participant_left')), 5000, 'the live peer to be told');
    await new Promise((resolve) => setTimeout(resolve, (IDLE_SECS + 1) * 1000));
    assert.equal(live.ws.readyState, WebSocket.OPEN, 'the live client is still connected');
    assert.ok(!live.messages.some((m) => m.type === 'leave'));
    live.ws.send(JSON.stringify({ type: 'leave' }));
    live.ws.close();
  });

  // Requirement: 1,000 join/leave cycles over 10 rooms leave no room, participant or growing memory behind.
  it('survives join/leave churn without leaking', { timeout: 120000 }, async () => {
    const cycle = async (n) => {
      for (let i = 0; i < n; i += 10) {
        const batch = await Promise.all(Array.from({ length: 10 }, (_, j) => joined(server, `churn-${(i + j) % 10}`)));
        for (const c of batch) c.ws.send(JSON.stringify({ type: 'leave' }));
        await Promise.all(batch.map((c) => c.closed));
      }
    };
    const baseline = await rssBytes(server);
    await cycle(500);
    await waitFor(async () => {
      const h = await getHealth(server.baseUrl);
      if (h.rooms !== 0 || h.participants !== 0) throw new Error(JSON.stringify(h));
      return true;
    }, 10000, 'every room and participant gone after the first 500');
    const rssAfterFirst = await rssBytes(server);
    await cycle(500);
    await waitFor(async () => {
      const h = await getHealth(server.baseUrl);
      if (h.rooms !== 0 || h.participants !== 0) throw new Error(JSON.stringify(h));
      return true;
    }, 10000, 'every room and participant gone after the next 500');
    const growth = (await rssBytes(server)) - rssAfterFirst;
    const errors = fs.readFileSync(server.logPath, 'utf8').split('\n').filter((l) => / ERROR /.test(l));
    assert.deepEqual(errors, [], 'no error in the server log');
    console.log(`RSS before ${(baseline / 1048576).toFixed(1)} MiB, after 500 joins ${(rssAfterFirst / 1048576).toFixed(1)} MiB; growth over the next 500: ${(growth / 1048576).toFixed(2)} MiB`);
    assert.ok(growth < 16 * 1048576, `RSS grew ${(growth / 1048576).toFixed(1)} MiB over 500 join/leave cycles`);
  });
});

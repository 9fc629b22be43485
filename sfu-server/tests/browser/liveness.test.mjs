// Liveness and churn: a signaling client that stops answering pings is removed with
// `timeout` while a live one stays; a thousand signaling joins and leaves plus two hundred
// media participants (loadtest peers: ICE, DTLS, SRTP) leave no room, participant, task
// or memory behind. (Raw WebSocket clients and the loadtest binary; the idle timeout
// comes from a config file.)

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import WebSocket from 'ws';
import parsePrometheus from 'parse-prometheus-text-format';
import { makeTempDir, startServer, waitFor, getHealth, LOADTEST_BIN } from './lib.mjs';

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

  // Requirement: 1,000 signaling join/leave cycles over 10 rooms, then 200 media participants
  // in 10 loadtest runs, leave no room, participant, runtime task or growing memory behind,
  // and no error in the log.
  it('survives join/leave churn without leaking', { timeout: 180000 }, async () => {
    const cycle = async (n) => {
      for (let i = 0; i < n; i += 10) {
        const batch = await Promise.all(Array.from({ length: 10 }, (_, j) => joined(server, `churn-${(i + j) % 10}`)));
        for (const c of batch) c.ws.send(JSON.stringify({ type: 'leave' }));
        await Promise.all(batch.map((c) => c.closed));
      }
    };
    const mediaRun = (i) => new Promise((resolve, reject) => execFile(LOADTEST_BIN, [
      '--url', server.wsUrl, '--rooms', '5', '--publishers', '2', '--subscribers', '2', '--duration', '3s',
      '--ramp', '40', '--fps', '15', '--video-kbps', '50,100,200', '--seed', String(i),
    ], (err, stdout, stderr) => (err ? reject(new Error(`loadtest run ${i}: ${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout))));
    const empty = async (what) => waitFor(async () => {
      const h = await getHealth(server.baseUrl);
      if (h.rooms !== 0 || h.participants !== 0) throw new Error(JSON.stringify(h));
      return h;
    }, 10000, `every room and participant gone after ${what}`);
    const baseline = { rss: await rssBytes(server), tasks: (await getHealth(server.baseUrl)).tasks };
    await cycle(500);
    const afterFirst = { rss: await rssBytes(server), tasks: (await empty('the first 500')).tasks };
    await cycle(500);
    const afterSecond = { rss: await rssBytes(server), tasks: (await empty('the next 500')).tasks };
    const media = async (from) => {
      for (let i = from; i < from + 5; i++) {
        const out = await mediaRun(i);
        assert.match(out, /PASS every participant stayed until the end \(20\/20\)/);
      }
    };
    await media(0);
    const afterMedia = { rss: await rssBytes(server), tasks: (await empty('100 media participants')).tasks };
    await media(5);
    const afterMoreMedia = { rss: await rssBytes(server), tasks: (await empty('200 media participants')).tasks };
    const mib = (b) => (b / 1048576).toFixed(1);
    console.log(`churn: RSS ${mib(baseline.rss)} MiB before, ${mib(afterFirst.rss)} after 500 joins, ${mib(afterSecond.rss)} after 1,000, `
      + `${mib(afterMedia.rss)} after 100 media participants, ${mib(afterMoreMedia.rss)} after 200; `
      + `runtime tasks ${[baseline, afterFirst, afterSecond, afterMedia, afterMoreMedia].map((x) => x.tasks).join(' / ')}`);
    const errors = fs.readFileSync(server.logPath, 'utf8').split('\n').filter((l) => / ERROR /.test(l));
    assert.deepEqual(errors, [], 'no error in the server log');
    // A few tasks serve the test's own keep-alive HTTP connections (healthz, metrics).
    for (const [what, tasks] of [['500', afterFirst.tasks], ['1,000', afterSecond.tasks], ['media', afterMoreMedia.tasks]]) {
      assert.ok(tasks <= baseline.tasks + 4, `${tasks} runtime tasks after ${what}, ${baseline.tasks} before`);
    }
    const growth = afterSecond.rss - afterFirst.rss;
    assert.ok(growth < 16 * 1048576, `RSS grew ${mib(growth)} MiB over 500 join/leave cycles`);
    // The first 100 media participants raise the allocator's high-water mark; the next 100 must not.
    const mediaGrowth = afterMoreMedia.rss - afterMedia.rss;
    assert.ok(mediaGrowth < 8 * 1048576, `RSS grew ${mib(mediaGrowth)} MiB over the second 100 media participants`);
  });
});

// Multi-node on Redis: Debian's redis-server (with a password) and two sfu-server nodes on
// loopback. Joins for one room through either node end on the room's owner (the web client
// and the loadtest follow the `redirect`), every node lists every room of the cluster (admin
// API and dashboard), and a killed node's rooms are placed again once its records expire.
// Node records are sealed with the cluster secret: a record forged in Redis redirects
// nobody, and the web client follows only ws:/wss: redirects. Redis over TLS works.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import {
  makeTempDir, startServer, launchBrowser, closeBrowser, openParticipant, closeParticipant,
  expectMediaFrom, waitFor, withDiagnostics, getHealth, LOADTEST_BIN,
  freePort,
} from './lib.mjs';

const TTL_SECS = 3;
const REDIS_PASSWORD = 'cluster-test-redis-password';
const CLUSTER_SECRET = 'cluster-test-secret-0123456789abcdef';

/** Runs one redis-cli command against the test's Redis; resolves to its output. */
function redisCli(port, ...command) {
  return new Promise((resolve, reject) => execFile('redis-cli', ['-p', String(port), '--no-auth-warning', '-a', REDIS_PASSWORD, ...command],
    (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout.trim()))));
}

/** A raw client's first reply to `join` (`joined`, `redirect` or `error`); the socket stays open. */
async function join(node, room) {
  const ws = new WebSocket(node.wsUrl);
  const messages = [];
  ws.on('message', (d) => messages.push(JSON.parse(d.toString())));
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  ws.send(JSON.stringify({ type: 'join', room, name: 'raw' }));
  const reply = await waitFor(() => messages[0], 5000, `a reply to join ${room}`);
  return { ws, reply };
}

async function roomsOf(node) {
  return (await fetch(`${node.baseUrl}/api/rooms`)).json();
}

describe('cluster of two nodes on Redis', () => {
  let redis;
  let redisPort;
  let args;
  let nodeA;
  let nodeB;
  let browser;
  let A;
  let B;
  const sockets = [];
  const state = () => ({ server: nodeA, participants: [A, B] });

  before(async () => {
    const tmp = makeTempDir();
    const port = await freePort();
    redisPort = port;
    const log = fs.openSync(path.join(tmp, 'redis.log'), 'w');
    redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--requirepass', REDIS_PASSWORD], { stdio: ['ignore', log, log] });
    await waitFor(() => fs.readFileSync(path.join(tmp, 'redis.log'), 'utf8').includes('Ready to accept connections')
      || Promise.reject(new Error('redis not ready')), 10000, 'redis-server to start');
    const config = path.join(tmp, 'cluster.toml');
    fs.writeFileSync(config, `cluster_ttl_secs = ${TTL_SECS}\n`);
    args = (id) => ['--config', config, '--redis-url', `redis://:${REDIS_PASSWORD}@127.0.0.1:${port}/`, '--node-id', id,
      '--cluster-secret', CLUSTER_SECRET];
    nodeA = await startServer(makeTempDir(), { extraArgs: args('node-a') });
    nodeB = await startServer(makeTempDir(), { extraArgs: args('node-b') });
    browser = await launchBrowser(tmp);
  });

  after(async () => {
    for (const ws of sockets) ws.close();
    await closeParticipant(A);
    await closeParticipant(B);
    if (browser) await closeBrowser(browser);
    for (const node of [nodeA, nodeB]) if (node) await node.stop();
    if (redis) redis.kill('SIGKILL');
  });

  // Requirement: participants joining the same room through different nodes all end up on
  // the owner and see each other; the web client follows the redirect.
  it('joins through either node meet on the room\'s owner', { timeout: 90000 }, () => withDiagnostics(state, async () => {
    A = await openParticipant(browser, nodeA.baseUrl, { room: 'shared', name: 'A' });
    B = await openParticipant(browser, nodeB.baseUrl, { room: 'shared', name: 'B' });
    await Promise.all([expectMediaFrom(A, [B]), expectMediaFrom(B, [A])]);
    assert.ok((await B.sfu(() => window.sfu.log)).some((l) => l.includes(`joining at ${nodeA.wsUrl}`)), 'B followed a redirect to node A');
    const detail = await (await fetch(`${nodeA.baseUrl}/api/rooms/shared`)).json();
    assert.equal(detail.participants.length, 2, 'both are on node A');
    assert.equal((await fetch(`${nodeB.baseUrl}/api/rooms/shared`)).status, 404, 'node B holds no copy of the room');
    assert.equal((await getHealth(nodeB.baseUrl)).counters.cluster_redirects, 1);
  }));

  // Requirement: rooms on both nodes are listed from either node (admin API and dashboard).
  it('every node lists every room of the cluster', { timeout: 30000 }, async () => {
    const onlyB = await join(nodeB, 'only-b');
    sockets.push(onlyB.ws);
    assert.equal(onlyB.reply.type, 'joined', 'node B is the least loaded, so it takes the new room');
    for (const node of [nodeA, nodeB]) {
      const rooms = await waitFor(async () => {
        const list = await roomsOf(node);
        return list.length === 2 ? list : null;
      }, 10000, 'both rooms listed');
      const byName = Object.fromEntries(rooms.map((r) => [r.room, r]));
      assert.equal(byName.shared.node, 'node-a');
      assert.equal(byName['only-b'].node, 'node-b');
      assert.equal(byName.shared.participants, 2);
      assert.equal(byName['only-b'].participants, 1);
    }
    const page = await browser.newPage();
    try {
      await page.goto(`${nodeA.baseUrl}/dashboard`);
      await page.waitForSelector('#other-rooms tr[data-room="only-b"]', { timeout: 10000 });
    } finally {
      await page.close();
    }
  });

  // Requirement: the loadtest follows redirects too.
  it('loadtest participants follow the redirect to the owner', { timeout: 60000 }, async () => {
    const first = await join(nodeA, 'load-0');
    sockets.push(first.ws);
    const ownerIsA = first.reply.type === 'joined';
    if (!ownerIsA) {
      assert.deepEqual(first.reply, { type: 'redirect', url: nodeB.wsUrl, room: 'load-0' });
      const onB = await join(nodeB, 'load-0');
      sockets.push(onB.ws);
      assert.equal(onB.reply.type, 'joined');
    }
    const other = ownerIsA ? nodeB : nodeA;
    const redirectsBefore = (await getHealth(other.baseUrl)).counters.cluster_redirects;
    const out = await new Promise((resolve, reject) => execFile(LOADTEST_BIN, [
      '--url', other.wsUrl, '--rooms', '1', '--publishers', '2', '--duration', '4s', '--fps', '15',
      '--video-kbps', '50,100,200', '--max-loss', '1%',
    ], (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout))));
    assert.match(out, /PASS every expected track delivered media \(4\/4\)/);
    assert.equal((await getHealth(other.baseUrl)).counters.cluster_redirects, redirectsBefore + 2, 'both loadtest peers were redirected');
  });

  // Requirement: a node record forged in Redis (by anyone who can write there) redirects
  // nobody: nodes follow only records sealed with the cluster secret, and count the forgery.
  it('a forged node record redirects nobody', { timeout: 30000 }, async () => {
    const record = JSON.stringify({ id: 'evil', url: 'ws://attacker.example/ws', participants: 0, rooms: [] });
    await redisCli(redisPort, 'SET', 'sfu:node:evil', record, 'EX', '60');
    await redisCli(redisPort, 'SET', 'sfu:room:forged', 'evil', 'EX', '60');
    const forgedBefore = (await getHealth(nodeA.baseUrl)).counters.cluster_forged_records;
    const attempt = await join(nodeA, 'forged');
    sockets.push(attempt.ws);
    assert.notEqual(attempt.reply.url, 'ws://attacker.example/ws', JSON.stringify(attempt.reply));
    assert.ok(['joined', 'redirect'].includes(attempt.reply.type), JSON.stringify(attempt.reply));
    if (attempt.reply.type === 'redirect') assert.equal(attempt.reply.url, nodeB.wsUrl);
    assert.ok((await getHealth(nodeA.baseUrl)).counters.cluster_forged_records > forgedBefore, 'the forgery is counted');
    await redisCli(redisPort, 'DEL', 'sfu:node:evil');
  });

  // Requirement: the web client follows only ws: and wss: redirects (its join and token are
  // sent again to the URL).
  it('the web client refuses a redirect that is not a WebSocket URL', { timeout: 30000 }, async () => {
    const page = await browser.newPage();
    try {
      await page.routeWebSocket(/\/ws$/, (ws) => {
        ws.onMessage((text) => {
          const message = JSON.parse(text);
          if (message.type === 'join') ws.send(JSON.stringify({ type: 'redirect', url: 'https://attacker.example/ws', room: message.room }));
        });
      });
      await page.goto(`${nodeA.baseUrl}/`);
      await page.waitForFunction(() => window.sfu && typeof window.sfu.join === 'function');
      const outcome = await page.evaluate(() => window.sfu.join({ room: 'r', name: 'n', audio: false, video: false })
        .then(() => 'joined', (err) => err.message));
      assert.match(outcome, /refused a redirect to https:\/\/attacker\.example\/ws/);
    } finally {
      await page.close();
    }
  });

  // Requirement: a node with the wrong Redis password does not start, saying why.
  it('Redis AUTH is required', { timeout: 30000 }, async () => {
    const wrong = ['--redis-url', `redis://:wrong-password@127.0.0.1:${redisPort}/`, '--node-id', 'intruder', '--cluster-secret', CLUSTER_SECRET];
    await assert.rejects(startServer(makeTempDir(), { extraArgs: wrong, timeoutMs: 10000 }), /cannot reach Redis|exited before listening/);
  });

  // Requirement: killing a node frees its rooms for re-placement once its records expire.
  it('a dead node\'s rooms are placed again', { timeout: 30000 }, async () => {
    nodeB.proc.kill('SIGKILL');
    await nodeB.exited;
    const reply = await waitFor(async () => {
      const attempt = await join(nodeA, 'only-b');
      sockets.push(attempt.ws);
      return attempt.reply.type === 'joined' ? attempt.reply : null;
    }, (TTL_SECS + 5) * 1000, 'only-b placed again on node A', 500);
    assert.equal(reply.room, 'only-b');
    const rooms = await roomsOf(nodeA);
    assert.ok(rooms.every((r) => r.node === 'node-a'), JSON.stringify(rooms));
  });

  // Requirement: a node stopped with SIGTERM leaves the cluster at once, so its rooms are
  // placed again without waiting for its records to expire.
  it('a stopped node releases its rooms at once', { timeout: 30000 }, async () => {
    const nodeC = await startServer(makeTempDir(), { extraArgs: args('node-c') });
    try {
      const onC = await join(nodeC, 'on-c');
      assert.equal(onC.reply.type, 'joined', 'node C, the least loaded, takes the new room');
      onC.ws.close();
      const beforeStop = await join(nodeA, 'on-c');
      beforeStop.ws.close();
      assert.deepEqual(beforeStop.reply, { type: 'redirect', url: nodeC.wsUrl, room: 'on-c' });
    } finally {
      await nodeC.stop();
    }
    const stoppedAt = Date.now();
    const after = await join(nodeA, 'on-c');
    sockets.push(after.ws);
    assert.equal(after.reply.type, 'joined', `right after node C stopped: ${JSON.stringify(after.reply)}`);
    assert.ok(Date.now() - stoppedAt < TTL_SECS * 1000, 'placed again before its records could have expired');
  });

  // Requirement: with Redis gone, a node keeps serving: joins are placed on it, the failure
  // is counted, and nothing hangs.
  it('a node keeps serving joins when Redis is gone', { timeout: 30000 }, async () => {
    redis.kill('SIGKILL');
    await new Promise((resolve) => redis.once('exit', resolve));
    const errorsBefore = (await getHealth(nodeA.baseUrl)).counters.cluster_errors;
    const startedAt = Date.now();
    const local = await join(nodeA, 'without-redis');
    sockets.push(local.ws);
    assert.equal(local.reply.type, 'joined', JSON.stringify(local.reply));
    assert.ok(Date.now() - startedAt < 5000, `joined in ${Date.now() - startedAt} ms`);
    assert.ok((await getHealth(nodeA.baseUrl)).counters.cluster_errors > errorsBefore, 'the failed placement is counted');
    assert.ok((await roomsOf(nodeA)).some((r) => r.room === 'without-redis'), 'the room is listed');
  });
});

// Requirement: nodes reach Redis over TLS (rediss://), trusting the CA that SSL_CERT_FILE names.
it('a node reaches Redis over TLS', { timeout: 30000 }, async () => {
  const tmp = makeTempDir();
  // A CA, and Redis' certificate signed by it (a self-signed CA certificate cannot serve as
  // the server's own).
  const file = (name) => path.join(tmp, name);
  const [ca, caKey, cert, key] = [file('ca.crt'), file('ca.key'), file('redis.crt'), file('redis.key')];
  const openssl = (...a) => new Promise((resolve, reject) => execFile('openssl', a, (err, _o, stderr) => (err ? reject(new Error(stderr)) : resolve())));
  await openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', ca, '-days', '1', '-subj', '/CN=test CA');
  await openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', file('redis.csr'), '-subj', '/CN=localhost');
  fs.writeFileSync(file('san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  await openssl('x509', '-req', '-in', file('redis.csr'), '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '1', '-extfile', file('san.ext'));
  const port = await freePort();
  const log = path.join(tmp, 'redis.log');
  const redis = spawn('redis-server', ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--tls-cert-file', cert,
    '--tls-key-file', key, '--tls-ca-cert-file', ca, '--tls-auth-clients', 'no', '--requirepass', REDIS_PASSWORD, '--save', ''],
  { stdio: ['ignore', fs.openSync(log, 'w'), fs.openSync(log, 'a')] });
  let node;
  try {
    await waitFor(() => fs.readFileSync(log, 'utf8').includes('Ready to accept connections')
      || Promise.reject(new Error('redis not ready')), 10000, 'redis-server with TLS to start');
    node = await startServer(makeTempDir(), {
      extraArgs: ['--redis-url', `rediss://:${REDIS_PASSWORD}@localhost:${port}/`, '--node-id', 'tls-node', '--cluster-secret', CLUSTER_SECRET],
      env: { SSL_CERT_FILE: ca },
    });
    const first = await join(node, 'over-tls');
    first.ws.close();
    assert.equal(first.reply.type, 'joined', JSON.stringify(first.reply));
    const stored = await new Promise((resolve, reject) => execFile('redis-cli', ['--tls', '--cacert', ca, '-p', String(port), '--no-auth-warning',
      '-a', REDIS_PASSWORD, 'GET', 'sfu:room:over-tls'], (err, stdout) => (err ? reject(err) : resolve(stdout.trim()))));
    assert.equal(stored, 'tls-node', 'the room was placed through the TLS connection');
  } finally {
    if (node) await node.stop();
    redis.kill('SIGKILL');
  }
});

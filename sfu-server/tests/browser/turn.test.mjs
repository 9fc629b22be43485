// TURN: coturn (Debian's `coturn`) on loopback with deploy/turnserver.conf and a shared secret. The server hands each
// participant its own time-limited TURN REST credentials in `joined.ice_servers`; Chromium
// participants restricted to relayed candidates (iceTransportPolicy "relay") hold a call
// through coturn both ways; the credentials are exactly the TURN REST scheme, and coturn
// refuses expired ones.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import {
  makeTempDir, startServer, launchBrowser, closeBrowser, openParticipant, closeParticipant,
  expectMediaFrom, waitFor, withDiagnostics, REPO_ROOT,
  freePort,
} from './lib.mjs';

const SECRET = 'turn-test-shared-secret';
const TTL_SECS = 600;

/** TURN REST credentials computed here, independently of the server. */
function restCredentials(expires, identity) {
  const username = `${expires}:${identity}`;
  return { username, credential: crypto.createHmac('sha1', SECRET).update(username).digest('base64') };
}

/** The candidate types a relay-only peer connection gathers with `iceServers`, and any errors. */
async function gatherRelay(page, iceServers) {
  return page.evaluate(async (servers) => {
    const pc = new RTCPeerConnection({ iceServers: servers, iceTransportPolicy: 'relay' });
    const types = [];
    const errors = [];
    pc.onicecandidateerror = (e) => errors.push(e.errorCode);
    const done = new Promise((resolve) => {
      pc.onicecandidate = (e) => (e.candidate ? types.push(e.candidate.type) : resolve());
    });
    pc.createDataChannel('probe');
    await pc.setLocalDescription(await pc.createOffer());
    await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 10000))]);
    pc.close();
    return { types, errors };
  }, iceServers);
}

describe('TURN relay', () => {
  let tmp;
  let turn;
  let turnUrl;
  let server;
  let browser;
  let A;
  let B;
  const state = () => ({ server, participants: [A, B] });

  before(async () => {
    tmp = makeTempDir();
    const port = await freePort();
    turnUrl = `turn:127.0.0.1:${port}?transport=udp`;
    const log = fs.openSync(path.join(tmp, 'coturn.log'), 'w');
    // The shipped deploy/turnserver.conf, with this test's addresses and secret on top; the
    // SFU is on loopback, which coturn refuses as a peer unless allowed.
    turn = spawn('turnserver', [
      '-c', path.join(REPO_ROOT, 'deploy', 'turnserver.conf'),
      '--listening-ip=127.0.0.1', `--listening-port=${port}`, '--relay-ip=127.0.0.1',
      `--static-auth-secret=${SECRET}`, '--allow-loopback-peers',
      `--pidfile=${path.join(tmp, 'turnserver.pid')}`, `--userdb=${path.join(tmp, 'turndb')}`,
    ], { stdio: ['ignore', log, log] });
    await waitFor(() => fs.readFileSync(path.join(tmp, 'coturn.log'), 'utf8').includes('Total General servers')
      || Promise.reject(new Error('coturn not up')), 10000, 'coturn to start');
    const config = path.join(tmp, 'turn.toml');
    fs.writeFileSync(config, [
      '[[ice_servers]]', `urls = ["${turnUrl}"]`, `secret = "${SECRET}"`, `credential_ttl_secs = ${TTL_SECS}`, '',
    ].join('\n'));
    server = await startServer(tmp, { extraArgs: ['--config', config] });
    browser = await launchBrowser(tmp);
  });

  after(async () => {
    await closeParticipant(A);
    await closeParticipant(B);
    if (browser) await closeBrowser(browser);
    if (server) await server.stop();
    if (turn) turn.kill('SIGKILL');
  });

  // Requirement: `joined.ice_servers` carries the TURN URL with per-participant TURN REST
  // credentials: username `<expiry>:<participant id>`, password HMAC-SHA1 under the secret.
  it('hands each participant its own TURN REST credentials', async () => {
    const ws = new WebSocket(server.wsUrl);
    const messages = [];
    ws.on('message', (d) => messages.push(JSON.parse(d.toString())));
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    ws.send(JSON.stringify({ type: 'join', room: 'creds', name: 'x' }));
    const joined = await waitFor(() => messages.find((m) => m.type === 'joined'), 5000, 'joined');
    ws.close();
    assert.equal(joined.ice_servers.length, 1);
    const [entry] = joined.ice_servers;
    assert.deepEqual(entry.urls, [turnUrl]);
    const [expires, identity] = entry.username.split(':');
    assert.equal(identity, joined.participant_id);
    const now = Math.floor(Date.now() / 1000);
    assert.ok(Math.abs(Number(expires) - (now + TTL_SECS)) <= 5, `expires ${expires}, now ${now}`);
    assert.equal(entry.credential, restCredentials(expires, identity).credential);
  });

  // Requirement: credentials from the server get a relay allocation from coturn; the same
  // scheme with an expiry in the past is refused.
  it('coturn accepts the server\'s credentials and refuses expired ones', { timeout: 60000 }, async () => {
    const page = await browser.newPage();
    try {
      await page.goto(server.baseUrl);
      const now = Math.floor(Date.now() / 1000);
      const valid = await gatherRelay(page, [{ urls: [turnUrl], ...restCredentials(now + 60, 'probe') }]);
      assert.ok(valid.types.includes('relay'), `valid credentials: ${JSON.stringify(valid)}`);
      const expired = await gatherRelay(page, [{ urls: [turnUrl], ...restCredentials(now - 60, 'probe') }]);
      assert.deepEqual(expired.types, [], `expired credentials gave candidates: ${JSON.stringify(expired)}`);
      assert.ok(expired.errors.length > 0, 'the browser reported the refused allocation');
    } finally {
      await page.close();
    }
  });

  // Requirement: two participants that may only use relayed candidates hold a call through
  // coturn, media flowing both ways, with the server's credentials.
  it('carries a call between relay-only participants', { timeout: 90000 }, () => withDiagnostics(state, async () => {
    A = await openParticipant(browser, server.baseUrl, { room: 'relay', name: 'A', iceTransportPolicy: 'relay' });
    B = await openParticipant(browser, server.baseUrl, { room: 'relay', name: 'B', iceTransportPolicy: 'relay' });
    await Promise.all([expectMediaFrom(A, [B]), expectMediaFrom(B, [A])]);
    for (const p of [A, B]) {
      const local = await p.sfu(async () => {
        const stats = [...(await window.sfu._pc.getStats()).values()];
        const pair = stats.find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
        const candidate = stats.find((s) => s.id === pair?.localCandidateId);
        return { type: candidate?.candidateType, port: candidate?.port };
      });
      assert.equal(local.type, 'relay', `${p.name}'s media goes through the relay`);
      assert.ok(local.port >= 49160 && local.port <= 49260, `${p.name}'s relayed address is one of this coturn's (port ${local.port})`);
    }
  }));
});

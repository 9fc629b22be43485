// Who may reach /ws and /api. Without credentials (development mode) only local callers are
// served, whatever the listener: requests through a proxy, naming a foreign Host (DNS
// rebinding) or from a foreign page (CSRF, cross-site WebSocket) are refused. With an auth
// secret the API needs an admin credential, token minting included. With credentials, pages
// need an allowed origin, and only those get CORS permission. HTML pages carry a CSP and
// framing, sniffing and referrer headers. The README's remote-access recipe yields a server
// that needs tokens. (Raw HTTP and WebSocket clients.)

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import WebSocket from 'ws';
import { makeTempDir, startServer, SERVER_BIN, REPO_ROOT } from './lib.mjs';

const SECRET = 'access-test-secret-0123456789abcdef';
const ADMIN_TOKEN = 'access-test-admin-token';

/** One HTTP request with exactly these headers; resolves to { status, headers, body }. */
function request(server, method, urlPath, headers = {}, body) {
  const [host, port] = [server.httpAddr.slice(0, server.httpAddr.lastIndexOf(':')), Number(server.httpAddr.split(':').pop())];
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, method, path: urlPath, headers: { Host: server.httpAddr, ...headers } }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    if (body !== undefined) req.end(body); else req.end();
  });
}

/** Opens /ws with these headers; resolves to 'open' or the HTTP status of the refusal. */
function upgrade(server, headers = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(server.wsUrl, { headers });
    ws.once('open', () => { ws.close(); resolve('open'); });
    ws.once('unexpected-response', (_req, res) => { res.resume(); resolve(res.statusCode); });
    ws.once('error', (err) => reject(err));
  });
}

/** The value of the labelled refusal counter at the metrics endpoint. */
async function refusals(server, door, reason) {
  const text = await (await fetch(server.metricsUrl)).text();
  const line = text.split('\n').find((l) => l.startsWith(`sfu_http_refused_total{`) && l.includes(`door="${door}"`) && l.includes(`reason="${reason}"`));
  assert.ok(line, `sfu_http_refused_total{door="${door}",reason="${reason}"} is exported`);
  return Number(line.split(' ').pop());
}

describe('development mode serves local callers only', () => {
  let server;
  before(async () => { server = await startServer(makeTempDir()); });
  after(async () => { if (server) await server.stop(); });

  // Requirement: the open development mode refuses proxied, rebinding and cross-site requests
  // on /api (the dashboard data included) and /ws, and serves a local page.
  it('refuses requests that are not from a local caller', async () => {
    const own = `http://${server.httpAddr}`;
    assert.equal((await request(server, 'GET', '/api/rooms')).status, 200, 'a local tool');
    assert.equal((await request(server, 'GET', '/api/rooms', { Origin: own })).status, 200, 'a local page');
    const refused = [
      ['through a proxy (X-Forwarded-For)', { 'X-Forwarded-For': '203.0.113.9' }],
      ['through a proxy (Forwarded)', { Forwarded: 'for=203.0.113.9;proto=https' }],
      ['through a proxy (X-Real-IP)', { 'X-Real-IP': '203.0.113.9' }],
      ['DNS rebinding', { Host: 'attacker.example:8080' }],
      ['a cross-site page', { Origin: 'https://attacker.example' }],
    ];
    const before = { admin: await refusals(server, 'admin', 'not_local'), signaling: await refusals(server, 'signaling', 'not_local') };
    for (const [what, headers] of refused) {
      for (const [method, urlPath] of [['GET', '/api/rooms'], ['GET', '/api/events'], ['POST', '/api/rooms/x/participants/PA_1/kick'], ['DELETE', '/api/rooms/x']]) {
        const res = await request(server, method, urlPath, headers);
        assert.equal(res.status, 403, `${what}: ${method} ${urlPath} answered ${res.status} ${res.body}`);
        assert.equal(JSON.parse(res.body).error.code, 'forbidden');
      }
      assert.equal(await upgrade(server, headers), 403, `${what}: /ws`);
    }
    assert.equal(await upgrade(server, { Origin: own }), 'open', 'the server\'s own page opens /ws');
    for (const [, headers] of refused) {
      assert.equal((await request(server, 'GET', '/favicon.ico', headers)).status, 404, 'a path outside /api is no admin request');
    }
    assert.equal(await refusals(server, 'admin', 'not_local'), before.admin + refused.length * 4);
    assert.equal(await refusals(server, 'signaling', 'not_local'), before.signaling + refused.length);
  });

  // Requirement: HTML pages get a CSP with frame-ancestors, X-Frame-Options, nosniff and a
  // Referrer-Policy; every response is nosniff.
  it('serves pages with security headers', async () => {
    for (const page of ['/', '/dashboard']) {
      const res = await request(server, 'GET', page);
      assert.equal(res.status, 200);
      assert.match(res.headers['content-security-policy'], /frame-ancestors 'none'/, page);
      assert.match(res.headers['content-security-policy'], /script-src 'self'/, page);
      assert.equal(res.headers['x-frame-options'], 'DENY', page);
      assert.equal(res.headers['x-content-type-options'], 'nosniff', page);
      assert.equal(res.headers['referrer-policy'], 'no-referrer', page);
    }
    for (const asset of ['/sfu-client.js', '/app.js', '/healthz', '/api/rooms']) {
      assert.equal((await request(server, 'GET', asset)).headers['x-content-type-options'], 'nosniff', asset);
    }
  });
});

describe('with an auth secret the API needs an admin credential', () => {
  let server;
  before(async () => { server = await startServer(makeTempDir(), { extraArgs: ['--auth-secret', SECRET] }); });
  after(async () => { if (server) await server.stop(); });

  // Requirement: POST /api/tokens and every admin endpoint need an admin credential whenever
  // auth_secret is set (before, a loopback listener minted admin tokens for anyone).
  it('refuses to mint tokens or list rooms without one', async () => {
    const ask = JSON.stringify({ room: 'r', identity: 'mallory', grants: { admin: true } });
    const json = { 'Content-Type': 'application/json' };
    const denied = await request(server, 'POST', '/api/tokens', json, ask);
    assert.equal(denied.status, 401, denied.body);
    assert.equal((await request(server, 'GET', '/api/rooms')).status, 401);
    const participant = execFileSync(SERVER_BIN, ['token', '--auth-secret', SECRET, '--room', 'r', '--identity', 'p'], { encoding: 'utf8' }).trim();
    assert.equal((await request(server, 'POST', '/api/tokens', { ...json, Authorization: `Bearer ${participant}` }, ask)).status, 403,
      'a participant\'s token is not an admin credential');
    const admin = execFileSync(SERVER_BIN, ['token', '--auth-secret', SECRET, '--room', 'r', '--identity', 'ops', '--grants', 'admin'], { encoding: 'utf8' }).trim();
    const minted = await request(server, 'POST', '/api/tokens', { ...json, Authorization: `Bearer ${admin}` }, ask);
    assert.equal(minted.status, 200, minted.body);
    assert.ok(JSON.parse(minted.body).token);
    const viaQuery = await request(server, 'GET', `/api/rooms?access_token=${encodeURIComponent(admin)}`);
    assert.equal(viaQuery.status, 200, 'a percent-encoded access_token is decoded');
    assert.ok(await refusals(server, 'admin', 'credential') >= 3);
  });
});

describe('with credentials, pages need an allowed origin', () => {
  let server;
  const allowed = 'https://app.example.com';
  before(async () => {
    server = await startServer(makeTempDir(), { extraArgs: ['--auth-secret', SECRET, '--admin-token', ADMIN_TOKEN, '--allowed-origin', allowed] });
  });
  after(async () => { if (server) await server.stop(); });

  // Requirement: /ws and the API check Origin against allowed_origins (default: the page's own
  // host); /api has an explicit CORS policy that permits only those origins.
  it('checks Origin and answers CORS preflights for allowed origins only', async () => {
    const bearer = { Authorization: `Bearer ${ADMIN_TOKEN}` };
    assert.equal((await request(server, 'GET', '/api/rooms', bearer)).status, 200, 'no Origin: not a page');
    assert.equal((await request(server, 'GET', '/api/rooms', { ...bearer, Origin: allowed })).status, 200);
    assert.equal((await request(server, 'GET', '/api/rooms', { ...bearer, Origin: `http://${server.httpAddr}` })).status, 200, 'own page');
    const foreign = await request(server, 'POST', '/api/rooms/x/participants/PA_1/kick', { ...bearer, Origin: 'https://attacker.example' });
    assert.equal(foreign.status, 403, foreign.body);
    assert.equal(await upgrade(server, { Origin: 'https://attacker.example' }), 403);
    assert.equal(await upgrade(server, { Origin: allowed }), 'open');

    const preflight = (origin) => request(server, 'OPTIONS', '/api/rooms/x', {
      Origin: origin, 'Access-Control-Request-Method': 'DELETE', 'Access-Control-Request-Headers': 'authorization',
    });
    const ok = await preflight(allowed);
    assert.equal(ok.headers['access-control-allow-origin'], allowed);
    assert.match(ok.headers['access-control-allow-methods'], /DELETE/);
    assert.match(ok.headers['access-control-allow-headers'], /authorization/i);
    const evil = await preflight('https://attacker.example');
    assert.equal(evil.headers['access-control-allow-origin'], undefined, 'no CORS permission for other origins');
    const simple = await request(server, 'GET', '/api/rooms', { ...bearer, Origin: allowed });
    assert.equal(simple.headers['access-control-allow-origin'], allowed);
    assert.ok(await refusals(server, 'admin', 'origin') >= 1);
    assert.ok(await refusals(server, 'signaling', 'origin') >= 1);
  });
});

/** Starts the server binary with `args` and `env`; resolves to its exit code (or 'running' after 3 s). */
function runBriefly(args, env = {}) {
  return new Promise((resolve) => {
    const proc = spawn(SERVER_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let out = '';
    proc.stdout.on('data', (d) => { out += d; });
    proc.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => { proc.kill('SIGTERM'); resolve({ status: 'running', out }); }, 3000);
    proc.on('exit', (code) => { clearTimeout(timer); resolve({ status: code, out }); });
  });
}

// Requirement: media bound to or advertised on a non-loopback address, or a non-loopback
// public_url, refuses to start without auth_secret and admin_token unless --insecure, saying
// what to set; the README's remote-access recipe (its variables and flags) starts and needs tokens.
it('a server reachable from elsewhere needs both credentials', { timeout: 60000 }, async () => {
  const base = ['--http', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0'];
  for (const reachable of [['--udp', '0.0.0.0:0'], ['--udp', '127.0.0.1:0', '--advertise-ip', '192.0.2.10'],
    ['--udp', '127.0.0.1:0', '--public-url', 'wss://sfu.example.com/ws']]) {
    const refused = await runBriefly([...base, ...reachable]);
    assert.notEqual(refused.status, 'running', `${reachable.join(' ')} started without credentials`);
    assert.notEqual(refused.status, 0);
    assert.match(refused.out, /auth_secret/);
    assert.match(refused.out, /admin_token/);
    assert.match(refused.out, /--insecure/);
    const insecure = await runBriefly([...base, ...reachable, '--insecure']);
    assert.equal(insecure.status, 'running', insecure.out);
  }

  const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const recipe = readme.match(/<!-- remote-access recipe -->\n```sh\n([\s\S]*?)```/);
  assert.ok(recipe, 'the README has the remote-access recipe');
  assert.match(recipe[1], /SFU_AUTH_SECRET=/);
  assert.match(recipe[1], /SFU_ADMIN_TOKEN=/);
  // The placeholder becomes a documentation address (RFC 5737).
  const flags = recipe[1].match(/sfu-server -- (.*)/)[1].replace(/<[^>]*>/g, '192.0.2.10').split(/\s+/).filter(Boolean);
  assert.deepEqual(flags.slice(0, 2), ['--udp', '0.0.0.0:50000'], 'the recipe binds media on every interface');
  const tmp = makeTempDir();
  const server = await startServer(tmp, {
    udp: '0.0.0.0:0',
    extraArgs: flags.slice(2),
    env: { SFU_AUTH_SECRET: SECRET, SFU_ADMIN_TOKEN: ADMIN_TOKEN },
  });
  try {
    const ws = new WebSocket(server.wsUrl);
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    const reply = new Promise((resolve) => ws.once('message', (d) => resolve(JSON.parse(d.toString()))));
    ws.send(JSON.stringify({ type: 'join', room: 'r', name: 'anyone' }));
    const first = await reply;
    assert.equal(first.type, 'error');
    assert.equal(first.code, 'unauthorized', 'a join without a token is refused');
    ws.close();
    assert.equal((await request(server, 'GET', '/api/rooms')).status, 401, 'the API needs the admin token');
    assert.equal((await request(server, 'GET', '/api/rooms', { Authorization: `Bearer ${ADMIN_TOKEN}` })).status, 200);
  } finally {
    await server.stop();
  }
});

// Join tokens: with an auth secret the server admits only valid, unexpired tokens for the
// room joined, enforces their grants, and `sfu-server token` creates them. A non-loopback
// listener without a secret refuses to start unless --insecure. (Raw WebSocket clients.)

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import WebSocket from 'ws';
import {
  makeTempDir, startServer, waitFor, sleep, SERVER_BIN, launchBrowser, openParticipant, closeParticipant, withDiagnostics, getHealth, rawOffer,
} from './lib.mjs';

const SECRET = 'auth-test-secret-0123456789abcdef';

/** `sfu-server token …` output. */
function token(args) {
  return execFileSync(SERVER_BIN, ['token', '--auth-secret', SECRET, ...args], { encoding: 'utf8' }).trim();
}

/** An HS256 JWT signed here, independently of the server's code, with any claims. */
function signedHere(claims) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${body}.${crypto.createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

/** A raw client that sends `join` and collects messages until the socket closes. */
async function joinWith(server, join) {
  const ws = new WebSocket(server.wsUrl);
  const messages = [];
  ws.on('message', (data) => messages.push(JSON.parse(data.toString())));
  const closed = new Promise((resolve) => ws.once('close', resolve));
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  ws.send(JSON.stringify({ type: 'join', ...join }));
  await waitFor(() => messages.length > 0 || Promise.reject(new Error('no reply')), 5000, 'a reply to join');
  return { ws, messages, closed };
}


describe('join tokens', () => {
  let server;
  before(async () => { server = await startServer(makeTempDir(), { extraArgs: ['--auth-secret', SECRET] }); });
  after(async () => { if (server) await server.stop(); });

  // Requirement: missing, invalid and expired tokens get `unauthorized`, a token for another room
  // `forbidden`, and the socket is closed.
  it('refuses joins without a valid token for the room', async () => {
    const expiring = token(['--room', 'r1', '--identity', 'late', '--ttl', '1s']);
    await sleep(2100);
    const cases = [
      [{ room: 'r1', name: 'x' }, 'unauthorized'],
      [{ room: 'r1', name: 'x', token: 'not.a.token' }, 'unauthorized'],
      [{ room: 'r1', name: 'x', token: token(['--room', 'r1', '--identity', 'u']).slice(0, -3) + 'AAA' }, 'unauthorized'],
      [{ room: 'r1', name: 'x', token: expiring }, 'unauthorized'],
      [{ room: 'r1', name: 'x', token: token(['--room', 'r2', '--identity', 'u']) }, 'forbidden'],
    ];
    const now = Math.floor(Date.now() / 1000);
    cases.push(
      [{ room: 'r1', name: 'x', token: signedHere({ sub: 'early', room: 'r1', exp: now + 600, nbf: now + 300 }) }, 'unauthorized'],
      [{ room: 'r1', name: 'x', token: `${signedHere({ sub: 'u', room: 'r1', exp: now + 600 }).split('.').slice(0, 2).join('.')}.` }, 'unauthorized'],
    );
    for (const [join, code] of cases) {
      const client = await joinWith(server, join);
      await client.closed;
      assert.equal(client.messages[0].type, 'error', JSON.stringify(client.messages));
      assert.equal(client.messages[0].code, code, `${JSON.stringify(join).slice(0, 60)}: ${client.messages[0].message}`);
    }
  });

  // Requirement: a token signed by any HS256 implementation with the secret is admitted once
  // its `nbf` has passed; registered claims the server does not use (iat, jti) are ignored.
  it('admits a token signed elsewhere whose nbf has passed', async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: 'carol', room: 'r1', exp: now + 600, nbf: now - 5, iat: now - 5, jti: 'abc' };
    const client = await joinWith(server, { room: 'r1', name: 'x', token: signedHere(claims) });
    assert.equal(client.messages[0].type, 'joined', JSON.stringify(client.messages));
    client.ws.close();
  });

  // Requirement: a valid token admits its holder under the token's name.
  it('admits a valid token with the name it carries', async () => {
    const client = await joinWith(server, { room: 'r1', name: 'ignored', token: token(['--room', 'r1', '--identity', 'alice', '--name', 'Alice']) });
    assert.equal(client.messages[0].type, 'joined');
    const observer = await joinWith(server, { room: 'r1', name: 'obs', token: token(['--room', 'r1', '--identity', 'bob']) });
    const alice = observer.messages[0].participants.find((p) => p.id === client.messages[0].participant_id);
    assert.equal(alice.name, 'Alice');
    client.ws.close();
    observer.ws.close();
  });

  // Requirement: one participant per identity in a room: a second join with the same
  // identity replaces the first, whose socket gets `leave` `replaced`; a token cannot fill a room.
  it('replaces the earlier participant of the same identity', async () => {
    const same = token(['--room', 'r8', '--identity', 'dave']);
    const first = await joinWith(server, { room: 'r8', name: 'x', token: same });
    const observer = await joinWith(server, { room: 'r8', name: 'o', token: token(['--room', 'r8', '--identity', 'olga']) });
    const second = await joinWith(server, { room: 'r8', name: 'x', token: same });
    assert.equal(second.messages[0].type, 'joined');
    await first.closed;
    assert.deepEqual(first.messages.filter((m) => m.type === 'leave'), [{ type: 'leave', reason: 'replaced' }]);
    const firstId = first.messages[0].participant_id;
    assert.ok(!second.messages[0].participants.some((p) => p.id === firstId), 'the replaced participant is gone before the new one joins');
    await waitFor(() => observer.messages.some((m) => m.type === 'participant_left' && m.participant_id === firstId)
      || Promise.reject(new Error('no participant_left')), 5000, 'the others told the first left');
    const third = await joinWith(server, { room: 'r8', name: 'x', token: same });
    await second.closed;
    assert.equal(third.messages[0].participants.length, 1, 'still one dave and olga');
    third.ws.close();
    observer.ws.close();
  });

  // Requirement: a kicked identity stays out of the room until its token expires, even with
  // a fresh token; others are not affected.
  it('keeps a kicked identity out until its token expires', async () => {
    const admin = token(['--room', 'any', '--identity', 'ops', '--grants', 'admin']);
    const mallory = token(['--room', 'r6', '--identity', 'mallory', '--ttl', '4s']);
    const joined = await joinWith(server, { room: 'r6', name: 'm', token: mallory });
    const id = joined.messages[0].participant_id;
    const kick = await fetch(`${server.baseUrl}/api/rooms/r6/participants/${id}/kick`, { method: 'POST', headers: { authorization: `Bearer ${admin}` } });
    assert.equal(kick.status, 200);
    await joined.closed;
    for (const again of [mallory, token(['--room', 'r6', '--identity', 'mallory'])]) {
      const refused = await joinWith(server, { room: 'r6', name: 'm', token: again });
      await refused.closed;
      assert.equal(refused.messages[0].code, 'forbidden', JSON.stringify(refused.messages[0]));
      assert.match(refused.messages[0].message, /kicked/);
    }
    const other = await joinWith(server, { room: 'r6', name: 'e', token: token(['--room', 'r6', '--identity', 'erin']) });
    assert.equal(other.messages[0].type, 'joined');
    other.ws.close();
    await sleep(4500);
    const later = await joinWith(server, { room: 'r6', name: 'm', token: token(['--room', 'r6', '--identity', 'mallory']) });
    assert.equal(later.messages[0].type, 'joined', 'admitted once the kicked token expired');
    later.ws.close();
  });

  // Requirement: `resume` re-checks the join token's expiry: an expired token's participant is
  // not taken back.
  it('refuses to resume a participant whose token expired', async () => {
    const short = token(['--room', 'r7', '--identity', 'frank', '--ttl', '2s']);
    const client = await joinWith(server, { room: 'r7', name: 'f', token: short });
    const resumeToken = client.messages[0].resume_token;
    assert.ok(resumeToken);
    client.ws.terminate();
    await sleep(2500);
    const ws = new WebSocket(server.wsUrl);
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    const reply = new Promise((resolve) => ws.once('message', (d) => resolve(JSON.parse(d.toString()))));
    ws.send(JSON.stringify({ type: 'resume', resume_token: resumeToken }));
    const answer = await reply;
    assert.equal(answer.type, 'error');
    assert.equal(answer.code, 'unauthorized', JSON.stringify(answer));
    ws.close();
  });

  // Requirement: the admin API creates join tokens that admit their holder; bad requests get 400.
  it('creates join tokens through the admin API', async () => {
    const admin = token(['--room', 'any', '--identity', 'ops', '--grants', 'admin']);
    const post = (body) => fetch(`${server.baseUrl}/api/tokens`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` }, body: JSON.stringify(body),
    });
    const res = await post({ room: 'r4', identity: 'carol', name: 'Carol', grants: { can_publish: false }, ttl_secs: 600 });
    assert.equal(res.status, 200);
    const { token: fresh, expires } = await res.json();
    assert.ok(expires > Date.now() / 1000 + 500);
    const client = await joinWith(server, { room: 'r4', name: 'x', token: fresh });
    assert.equal(client.messages[0].type, 'joined');
    client.ws.close();
    for (const bad of [{ room: 'r4' }, { room: '', identity: 'a' }, { room: 'r', identity: 'a', ttl_secs: 0 }, { room: 'r', identity: 'a', ttl_secs: 86401 }, { room: 'r', identity: 'a', extra: 1 }]) {
      const r = await post(bad);
      assert.equal(r.status, 400, JSON.stringify(bad));
      assert.equal((await r.json()).error.code, 'bad_request');
    }
  });

  // Requirement: without the data grant a participant's data channel messages are not relayed
  // (and counted as dropped); with it they are. Real browsers with tokens.
  // Also: data reaches only participants that may subscribe, and one participant's data is
  // limited to max_data_messages_per_second (100): the excess is dropped and counted.
  it('enforces the data grant', { timeout: 90000 }, async () => {
    let browser;
    let A;
    let B;
    let C;
    await withDiagnostics(() => ({ server, participants: [A, B, C] }), async () => {
      browser = await launchBrowser(makeTempDir());
      A = await openParticipant(browser, server.baseUrl, { room: 'r5', name: 'A', audio: false, video: false, token: token(['--room', 'r5', '--identity', 'a']) });
      B = await openParticipant(browser, server.baseUrl, { room: 'r5', name: 'B', audio: false, video: false, token: token(['--room', 'r5', '--identity', 'b', '--grants', 'publish,subscribe']) });
      C = await openParticipant(browser, server.baseUrl, { room: 'r5', name: 'C', audio: false, video: false, token: token(['--room', 'r5', '--identity', 'c', '--grants', 'publish,data']) });
      const send = (p, text) => waitFor(async () => {
        if (!(await p.sfu((t) => window.sfu.sendData('reliable', t), text))) throw new Error('channel not open');
        return true;
      }, 20000, `${p.name}'s reliable channel`);
      // Both channels open at the server only some time after the pages see theirs open:
      // A repeats its message until B has it.
      await waitFor(async () => {
        await send(A, 'from A');
        if (!(await B.dataMessages()).some((m) => m.data === 'from A')) throw new Error('B got nothing');
        return true;
      }, 20000, 'A\'s message to reach B', 500);
      const dropped = (await getHealth(server.baseUrl)).counters.data_dropped;
      await send(B, 'from B');
      await sleep(1500);
      assert.ok(!(await A.dataMessages()).some((m) => m.data === 'from B'), 'B has no data grant');
      const after = (await getHealth(server.baseUrl)).counters.data_dropped;
      assert.equal(after, dropped + 1, 'the refused message is counted');
      assert.ok(!(await C.dataMessages()).some((m) => m.data === 'from A'), 'C may not subscribe: it gets no data');

      const limited = async () => Number(((await (await fetch(server.metricsUrl)).text())
        .match(/sfu_limits_hit_total\{limit="data_messages_per_second"\} (\d+)/) || [])[1]);
      const limitedBefore = await limited();
      const sent = await A.sfu(() => {
        let n = 0;
        for (let i = 0; i < 300; i++) if (window.sfu.sendData('lossy', `burst ${i}`)) n++;
        return n;
      });
      await sleep(2000);
      const got = (await B.dataMessages()).filter((m) => m.data.startsWith('burst ')).length;
      console.log(`data burst: ${sent} sent, ${got} relayed`);
      assert.ok(got < sent, `${got} of ${sent} relayed`);
      assert.ok((await limited()) > limitedBefore, 'the excess is counted');
    }).finally(async () => {
      await closeParticipant(A);
      await closeParticipant(B);
      await closeParticipant(C);
      if (browser) await browser.close().catch(() => {});
    });
  });

  // Requirement: grants are enforced: no publishing without `publish`, no subscribing without `subscribe`.
  it('enforces publish and subscribe grants', async () => {
    const viewer = await joinWith(server, { room: 'r3', name: 'v', token: token(['--room', 'r3', '--identity', 'viewer', '--grants', 'subscribe,data']) });
    assert.equal(viewer.messages[0].type, 'joined');
    const witness = await joinWith(server, { room: 'r3', name: 'w', token: token(['--room', 'r3', '--identity', 'witness']) });
    // Every spelling of a sending m-line: plain, sendrecv, and port 0 with a=bundle-only
    // inside the BUNDLE group (which str0m receives on).
    const spellings = [
      ['sendonly', [{ kind: 'audio' }]],
      ['sendrecv', [{ kind: 'video', direction: 'sendrecv' }]],
      ['port 0, bundle-only', [{ kind: 'audio', port: 0, bundleOnly: true }, { kind: 'video', port: 0, bundleOnly: true }, { kind: 'video', port: 0, bundleOnly: true, rids: ['q', 'h'] }]],
    ];
    for (const [what, sections] of spellings) {
      const errors = viewer.messages.filter((m) => m.type === 'error').length;
      viewer.ws.send(JSON.stringify({ type: 'offer', sdp: rawOffer(sections) }));
      await waitFor(() => viewer.messages.filter((m) => m.type === 'error').length > errors || Promise.reject(new Error('no error')), 5000, `forbidden offer (${what})`);
      const refused = viewer.messages.filter((m) => m.type === 'error').at(-1);
      assert.equal(refused.code, 'forbidden', what);
      assert.match(refused.message, /publish/);
    }
    assert.ok(!viewer.messages.some((m) => m.type === 'answer'), 'no answer to a forbidden offer');
    await sleep(500);
    assert.ok(!witness.messages.some((m) => m.type === 'track_published'), 'nobody was offered a track of the subscribe-only participant');
    witness.ws.close();

    const publisher = await joinWith(server, { room: 'r3', name: 'p', token: token(['--room', 'r3', '--identity', 'pub', '--grants', 'publish']) });
    publisher.ws.send(JSON.stringify({ type: 'subscribe', track_id: 'TR_1' }));
    await waitFor(() => publisher.messages.some((m) => m.type === 'error') || Promise.reject(new Error('no error')), 5000, 'forbidden subscribe');
    assert.equal(publisher.messages.find((m) => m.type === 'error').code, 'forbidden');
    viewer.ws.close();
    publisher.ws.close();
  });
});

/** Starts the server binary with `args`; resolves to its exit code (or 'running' after 3 s). */
function runBriefly(args) {
  return new Promise((resolve) => {
    const proc = spawn(SERVER_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d) => { out += d; });
    proc.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => { proc.kill('SIGTERM'); resolve({ status: 'running', out }); }, 3000);
    proc.on('exit', (code) => { clearTimeout(timer); resolve({ status: code, out }); });
  });
}

// Requirement: binding a non-loopback address without keys refuses to start with a clear
// message, unless --insecure is given.
it('a public listener without an auth secret needs --insecure', { timeout: 30000 }, async () => {
  const base = ['--http', '0.0.0.0:0', '--udp', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0'];
  const refused = await runBriefly(base);
  assert.notEqual(refused.status, 0);
  assert.notEqual(refused.status, 'running');
  assert.match(refused.out, /auth_secret/);
  assert.match(refused.out, /--insecure/);
  const insecure = await runBriefly([...base, '--insecure']);
  assert.equal(insecure.status, 'running', insecure.out);
  assert.match(insecure.out, /listening: http=0\.0\.0\.0:/);
});

// The scenario of wildcard.test.mjs, run inside a private network namespace with one extra
// interface address (10.200.0.1 on a veth): the server binds its media socket to 0.0.0.0
// with no advertised IPs, so it must find and advertise that address itself. A raw client's
// offer gets an answer whose candidates are printed, and a loadtest call must flow through
// the advertised address. Prints one JSON line.

import { execFile } from 'node:child_process';
import WebSocket from 'ws';
import { makeTempDir, startServer, waitFor, sendOnlyAudioOffer, LOADTEST_BIN } from './lib.mjs';

// --insecure: a wildcard media socket is reachable from other hosts, which needs credentials otherwise.
const server = await startServer(makeTempDir('sfu-wildcard-'), { udp: '0.0.0.0:0', extraArgs: ['--insecure'] });
try {
  const ws = new WebSocket(server.wsUrl);
  const messages = [];
  ws.on('message', (d) => messages.push(JSON.parse(d.toString())));
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  ws.send(JSON.stringify({ type: 'join', room: 'probe', name: 'probe' }));
  await waitFor(() => messages.some((m) => m.type === 'joined'), 5000, 'joined');
  ws.send(JSON.stringify({ type: 'offer', sdp: sendOnlyAudioOffer() }));
  const answer = await waitFor(() => messages.find((m) => m.type === 'answer'), 5000, 'answer');
  ws.close();
  const candidates = answer.sdp.split('\r\n').filter((l) => l.startsWith('a=candidate:'))
    .map((l) => { const f = l.split(' '); return `${f[2].toLowerCase()} ${f[4]}`; });
  const loadtest = await new Promise((resolve) => execFile(LOADTEST_BIN, [
    '--url', server.wsUrl, '--rooms', '1', '--publishers', '2', '--duration', '4s', '--fps', '15',
    '--video-kbps', '50,100,200', '--max-loss', '1%',
  ], (err, stdout, stderr) => resolve({ ok: !err, out: stdout.split('\n').filter((l) => /PASS|FAIL|total/.test(l)), stderr })));
  console.log(JSON.stringify({ candidates, loadtest }));
} catch (err) {
  console.log(JSON.stringify({ error: err.message, log: server.logTail(40) }));
  process.exitCode = 1;
} finally {
  await server.stop();
}

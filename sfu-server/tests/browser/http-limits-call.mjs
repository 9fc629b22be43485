// Scenario for http-limits.test.mjs, run inside a private network namespace: the server
// listens on 10.201.0.1 (not loopback, so connections to it are counted per address).
// Prints one JSON line.

import net from 'node:net';
import WebSocket from 'ws';
import { makeTempDir, startServer, sleep } from './lib.mjs';
import fs from 'node:fs';
import path from 'node:path';

const result = {};
let server;
try {
  const tmp = makeTempDir('sfu-http-limits-');
  const config = path.join(tmp, 'caps.toml');
  fs.writeFileSync(config, ['max_http_connections_per_ip = 4', 'max_unjoined_connections_per_ip = 2', ''].join('\n'));
  server = await startServer(tmp, {
    http: '10.201.0.1:0',
    extraArgs: ['--config', config, '--auth-secret', 'http-limits-secret-0123456789abcdef', '--admin-token', 'http-limits-admin-token'],
  });
  const port = Number(server.httpAddr.split(':').pop());
  const open = () => new Promise((resolve) => {
    const socket = net.connect({ host: '10.201.0.1', port });
    socket.on('error', () => {});
    socket.once('connect', () => resolve(socket));
  });
  /** 'closed' when the server closes the connection within a second, else 'open'. */
  const fate = (socket) => new Promise((resolve) => {
    const timer = setTimeout(() => resolve('open'), 1000);
    socket.once('close', () => { clearTimeout(timer); resolve('closed'); });
  });
  const held = [await open(), await open(), await open(), await open()];
  const fates = await Promise.all(held.map(fate));
  const fifth = await open();
  const fifthFate = await fate(fifth);
  held[0].destroy();
  await sleep(300);
  const another = await open();
  result.connections = { held: fates.filter((f) => f === 'open').length, fifthClosed: fifthFate === 'closed', afterOneClosed: await fate(another) };
  for (const s of [...held, another]) s.destroy();
  await sleep(300);
  const upgrade = () => new Promise((resolve) => {
    const ws = new WebSocket(`ws://10.201.0.1:${port}/ws`);
    ws.once('open', () => resolve({ ws, status: 101 }));
    ws.once('unexpected-response', (_req, res) => resolve({ ws, status: res.statusCode }));
    ws.once('error', () => resolve({ ws, status: 'error' }));
  });
  const sockets = [await upgrade(), await upgrade(), await upgrade()];
  result.unjoined = sockets.map((s) => s.status);
  for (const s of sockets) s.ws.terminate();
  const metrics = await (await fetch(server.metricsUrl)).text();
  const count = (limit) => Number((metrics.match(new RegExp(`sfu_limits_hit_total\\{limit="${limit}"\\} (\\d+)`)) || [])[1]);
  result.counted = { http_connections_per_ip: count('http_connections_per_ip'), unjoined_connections_per_ip: count('unjoined_connections_per_ip') };
} catch (err) {
  result.error = err.stack || String(err);
  result.log = server ? server.logTail(30) : '';
} finally {
  if (server) await server.stop();
  console.log(JSON.stringify(result));
}

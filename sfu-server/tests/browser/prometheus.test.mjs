// A real Prometheus (Debian's `prometheus` package) scrapes the server during a call with the
// scrape configuration shipped in deploy/, and evaluates every query of the shipped Grafana
// dashboards: each one is valid PromQL, the media ones show the call, and a closed room's
// series go stale. Grafana itself and the compose stack cannot run here (no Docker engine).

import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import {
  makeTempDir, startServer, launchBrowser, closeBrowser, openParticipant, closeParticipant,
  waitFor, withDiagnostics, REPO_ROOT,
  freePort,
} from './lib.mjs';

const DEPLOY = path.join(REPO_ROOT, 'deploy');
const ROOM = 'prom-room';

/** Queries on labelled counters that only have series once something failed. */
const ONLY_ON_FAILURE = [/sfu_signaling_errors_by_code_total/, /sfu_connection_failures_total/];

/** Queries that must show the call: `[expression, minimum value]`. */
const SHOWS_THE_CALL = [
  ['sfu_rooms', 1],
  ['sfu_participants', 2],
  ['sfu_consumers', 2],
  ['rate(sfu_rtp_forwarded_total[1m])', 10],
  ['rate(sfu_udp_received_bytes_total[1m]) * 8', 10000],
  [`sfu_room_participants{room=~"${ROOM}"}`, 2],
  [`rate(sfu_room_forwarded_packets_total{room=~"${ROOM}"}[1m])`, 10],
  [`sfu_room_ingress_bits_per_second{room=~"${ROOM}"}`, 10000],
];

/** Every PromQL expression of the shipped Grafana dashboards, with `$room` filled in. */
function dashboardQueries() {
  const dir = path.join(DEPLOY, 'grafana', 'dashboards');
  return fs.readdirSync(dir).filter((f) => f.endsWith('.json')).flatMap((file) => {
    const dashboard = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
    return dashboard.panels.flatMap((p) => p.targets.map((t) => ({ file, panel: p.title, expr: t.expr.replaceAll('$room', ROOM) })));
  });
}

let tmp;
let server;
let browser;
let prometheus;
let promUrl;
let A;
let B;
const state = () => ({ server, participants: [A, B] });

/** An instant query's result vector; throws when Prometheus rejects the expression. */
async function query(expr) {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = await res.json();
  if (body.status !== 'success') throw new Error(`Prometheus rejected ${expr}: ${body.error}`);
  return body.data.result.map((r) => Number(r.value[1]));
}

before(() => withDiagnostics(state, async () => {
  tmp = makeTempDir();
  server = await startServer(tmp);
  const shipped = YAML.parse(fs.readFileSync(path.join(DEPLOY, 'prometheus.yml'), 'utf8'));
  // The shipped file as it is, except that the target is this test's server and scrapes come
  // every second so that rates have samples within a few seconds.
  shipped.global.scrape_interval = '1s';
  shipped.scrape_configs[0].static_configs[0].targets = [new URL(server.metricsUrl).host];
  const configPath = path.join(tmp, 'prometheus.yml');
  fs.writeFileSync(configPath, YAML.stringify(shipped));
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  const log = fs.openSync(path.join(tmp, 'prometheus.log'), 'w');
  prometheus = spawn('prometheus', [
    `--config.file=${configPath}`, `--storage.tsdb.path=${path.join(tmp, 'tsdb')}`,
    `--web.listen-address=127.0.0.1:${port}`,
  ], { stdio: ['ignore', log, log] });
  browser = await launchBrowser(tmp);
  A = await openParticipant(browser, server.baseUrl, { room: ROOM, name: 'A' });
  B = await openParticipant(browser, server.baseUrl, { room: ROOM, name: 'B' });
}), { timeout: 90000 });

after(async () => {
  if (prometheus) prometheus.kill('SIGKILL');
  if (browser) await closeBrowser(browser);
  if (server) await server.stop();
});

// Requirement: the shipped scrape configuration is valid for Prometheus itself.
it('promtool accepts deploy/prometheus.yml', () => {
  const out = execFileSync('promtool', ['check', 'config', path.join(DEPLOY, 'prometheus.yml')], { encoding: 'utf8' });
  assert.match(out, /SUCCESS/);
});

// Requirement: Prometheus scrapes the server, and every Grafana query evaluates; the media
// queries show the call with plausible values.
it('every Grafana query evaluates in Prometheus and the call shows', { timeout: 120000 }, () => withDiagnostics(state, async () => {
  await waitFor(async () => (await query('up{job="sfu"}'))[0] === 1, 30000, 'Prometheus scraping the server');
  for (const [expr, min] of SHOWS_THE_CALL) {
    await waitFor(async () => (await query(expr)).some((v) => v >= min), 60000, `${expr} >= ${min}`, 1000);
  }
  const labels = await (await fetch(`${promUrl}/api/v1/label/room/values?match[]=sfu_room_participants`)).json();
  assert.deepEqual(labels.data, [ROOM], 'the room variable lists the room');
  const queries = dashboardQueries();
  assert.ok(queries.length >= 30, `${queries.length} dashboard queries`);
  for (const { file, panel, expr } of queries) {
    const values = await query(expr);
    if (ONLY_ON_FAILURE.some((re) => re.test(expr))) continue;
    assert.ok(values.length > 0, `${file} "${panel}": ${expr} has no series`);
  }
}));

// Requirement: a closed room's series disappear from Prometheus too (stale after the room closes).
it('a closed room goes stale in Prometheus', { timeout: 60000 }, () => withDiagnostics(state, async () => {
  await closeParticipant(A);
  await closeParticipant(B);
  A = undefined;
  B = undefined;
  await waitFor(async () => (await query(`sfu_room_participants{room="${ROOM}"}`)).length === 0, 30000, 'the room series gone');
  assert.deepEqual(await query('sfu_rooms'), [0]);
}));

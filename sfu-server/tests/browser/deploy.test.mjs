// The deployment files: compose, Prometheus and Grafana provisioning parse and mount files
// that exist; every Grafana query names a metric a running server exports; METRICS.md
// documents exactly the metrics the server exports. (No browser needed.)

import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import parsePrometheus from 'parse-prometheus-text-format';
import { makeTempDir, startServer, REPO_ROOT } from './lib.mjs';

const DEPLOY = path.join(REPO_ROOT, 'deploy');
const readYaml = (file) => YAML.parse(fs.readFileSync(path.join(DEPLOY, file), 'utf8'));
const dashboards = () => fs.readdirSync(path.join(DEPLOY, 'grafana', 'dashboards'))
  .filter((f) => f.endsWith('.json'))
  .map((f) => [f, JSON.parse(fs.readFileSync(path.join(DEPLOY, 'grafana', 'dashboards', f), 'utf8'))]);

/** PromQL functions, keywords and label names that are not metric names. */
const NOT_METRICS = new Set(['rate', 'sum', 'by', 'histogram_quantile', 'le', 'code', 'reason', 'room', 'label_values']);

/** The metric names a PromQL expression refers to. */
function metricNames(expr) {
  const withoutStrings = expr.replace(/"[^"]*"/g, '""').replace(/\[[^\]]*\]/g, '');
  return [...withoutStrings.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)]
    .map((m) => m[0])
    .filter((w) => !NOT_METRICS.has(w) && !/^\d/.test(w) && w.includes('_'));
}

let server;
let exported;

before(async () => {
  server = await startServer(makeTempDir());
  const text = await (await fetch(server.metricsUrl)).text();
  exported = new Set();
  for (const family of parsePrometheus(text)) {
    exported.add(family.name);
    if (family.type === 'HISTOGRAM') for (const s of ['_bucket', '_sum', '_count']) exported.add(family.name + s);
  }
});

after(async () => {
  if (server) await server.stop();
});

// Requirement: the compose file parses, builds from deploy/Dockerfile and mounts files that exist.
it('compose and Prometheus files parse and reference files that exist', () => {
  const compose = readYaml('compose.yaml');
  assert.deepEqual(Object.keys(compose.services).sort(), ['grafana', 'prometheus', 'sfu']);
  const build = compose.services.sfu.build;
  assert.ok(fs.existsSync(path.join(DEPLOY, build.context, build.dockerfile)), 'the Dockerfile');
  for (const [name, service] of Object.entries(compose.services)) {
    for (const volume of service.volumes ?? []) {
      const source = volume.split(':')[0];
      assert.ok(fs.existsSync(path.join(DEPLOY, source)), `${name} mounts ${source}, which exists`);
    }
  }
  const prometheus = readYaml('prometheus.yml');
  const target = prometheus.scrape_configs[0].static_configs[0].targets[0];
  assert.equal(target, 'sfu:9464', 'Prometheus scrapes the sfu service on its metrics port');
  assert.equal(compose.services.sfu.environment.SFU_METRICS_LISTEN, '0.0.0.0:9464');
  const datasource = readYaml('grafana/provisioning/datasources/prometheus.yml').datasources[0];
  assert.equal(datasource.uid, 'prometheus');
  assert.ok(readYaml('grafana/provisioning/dashboards/sfu.yml').providers[0].options.path);
});

// Requirement: the Grafana dashboards parse and every query names a metric the server exports.
it('every Grafana query names an exported metric', () => {
  const found = dashboards();
  assert.deepEqual(found.map(([f]) => f).sort(), ['sfu-node.json', 'sfu-room.json']);
  for (const [file, dashboard] of found) {
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
    for (const variable of dashboard.templating.list) exprs.push(variable.query.query ?? variable.query);
    assert.ok(exprs.length >= 5, `${file} has queries`);
    for (const expr of exprs) {
      const names = metricNames(expr);
      assert.ok(names.length > 0, `${file}: no metric in ${expr}`);
      for (const name of names) assert.ok(exported.has(name), `${file}: ${name} (in ${expr}) is not exported`);
    }
    for (const panel of dashboard.panels) assert.equal(panel.datasource.uid, 'prometheus', `${file}: ${panel.title}`);
  }
  const room = dashboards().find(([f]) => f === 'sfu-room.json')[1];
  assert.equal(room.templating.list[0].name, 'room', 'the room dashboard has a room variable');
});

// Requirement: METRICS.md documents every exported metric and nothing that is not exported.
it('METRICS.md lists exactly the exported metrics', () => {
  const doc = fs.readFileSync(path.join(REPO_ROOT, 'METRICS.md'), 'utf8');
  const documented = new Set([...doc.matchAll(/`((?:sfu|process)_[a-z_]+)(?:\{[a-z]+\})?`/g)].map((m) => m[1]));
  const families = [...exported].filter((n) => !/_(bucket|sum|count)$/.test(n) || !exported.has(n.replace(/_(bucket|sum|count)$/, '')));
  for (const name of families) assert.ok(documented.has(name), `${name} is exported but not in METRICS.md`);
  for (const name of documented) assert.ok(exported.has(name), `${name} is in METRICS.md but not exported`);
});

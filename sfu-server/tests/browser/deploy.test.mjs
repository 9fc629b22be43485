// The deployment files: compose, Kubernetes manifests, the systemd unit, Prometheus and
// Grafana provisioning parse and reference files that exist; every SFU_* variable they set
// is one the server reads; the Kubernetes ConfigMap's config starts a server; every Grafana
// query names a metric a running server exports; METRICS.md documents exactly the metrics
// the server exports. (No browser needed.)

import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import parsePrometheus from 'parse-prometheus-text-format';
import { makeTempDir, startServer, REPO_ROOT, SERVER_BIN } from './lib.mjs';

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

/** The environment variables the server reads, from its --help. */
function serverEnvNames() {
  const help = execFileSync(SERVER_BIN, ['--help'], { encoding: 'utf8' });
  return new Set([...help.matchAll(/env: (SFU_[A-Z_]+)/g)].map((m) => m[1]));
}

/** Every document of a Kubernetes manifest file. */
function manifests(file) {
  return YAML.parseAllDocuments(fs.readFileSync(path.join(DEPLOY, 'k8s', file), 'utf8')).map((d) => {
    assert.deepEqual(d.errors, [], `${file} parses`);
    return d.toJS();
  });
}

// Requirement: the compose file parses, builds from deploy/Dockerfile and mounts files that exist.
it('compose and Prometheus files parse and reference files that exist', () => {
  const compose = readYaml('compose.yaml');
  assert.deepEqual(Object.keys(compose.services).sort(), ['coturn', 'grafana', 'prometheus', 'redis', 'sfu']);
  const known = serverEnvNames();
  for (const name of Object.keys(compose.services.sfu.environment)) assert.ok(known.has(name), `compose sets ${name}, which the server reads`);
  assert.match(compose.services.sfu.environment.SFU_REDIS_URL, /^redis:\/\/:\$\{REDIS_PASSWORD[^}]*\}@redis:/, 'the sfu uses the compose Redis, with its password');
  assert.ok(compose.services.redis.command.includes('--requirepass'), 'the compose Redis needs a password');
  assert.match(compose.services.sfu.environment.SFU_CLUSTER_SECRET, /^\$\{SFU_CLUSTER_SECRET:\?/, 'the cluster secret is required');
  assert.ok(compose.services.coturn.command.some((a) => a.startsWith('--static-auth-secret=${SFU_TURN_SECRET')),
    'coturn and the sfu share SFU_TURN_SECRET');
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

// Requirement: the Kubernetes manifests parse, reference each other and files that exist, set
// only variables the server reads, and their ConfigMap's config starts a server.
it('Kubernetes manifests are consistent and their config starts a server', { timeout: 30000 }, async () => {
  const kustomization = YAML.parse(fs.readFileSync(path.join(DEPLOY, 'k8s', 'kustomization.yaml'), 'utf8'));
  const docs = kustomization.resources.flatMap((file) => manifests(file));
  const byKind = (kind) => docs.filter((d) => d.kind === kind);
  for (const d of docs) assert.ok(d.apiVersion && d.kind && d.metadata?.name, JSON.stringify(d).slice(0, 80));
  const [statefulSet] = byKind('StatefulSet');
  const pod = statefulSet.spec.template.spec;
  assert.equal(pod.hostNetwork, true, 'media ports on the node\'s IP');
  const [container] = pod.containers;
  const known = serverEnvNames();
  for (const { name } of container.env) if (name.startsWith('SFU_')) assert.ok(known.has(name), `the StatefulSet sets ${name}, which the server reads`);
  const configMaps = new Map(byKind('ConfigMap').map((c) => [c.metadata.name, c]));
  const volume = pod.volumes.find((v) => v.configMap);
  assert.ok(configMaps.has(volume.configMap.name), 'the mounted ConfigMap is in the manifests');
  const mount = container.volumeMounts.find((m) => m.name === volume.name).mountPath;
  const configPath = container.args[container.args.indexOf('--config') + 1];
  const file = path.relative(mount, configPath);
  const toml = configMaps.get(volume.configMap.name).data[file];
  assert.ok(toml, `${configPath} is a key of the ConfigMap`);
  const services = byKind('Service').map((svc) => svc.metadata.name);
  assert.ok(services.includes(statefulSet.spec.serviceName), 'the StatefulSet\'s headless Service exists');
  const redisUrl = container.env.find((e) => e.name === 'SFU_REDIS_URL').value;
  assert.ok(services.includes(new URL(redisUrl).hostname), 'SFU_REDIS_URL names the Redis Service');
  assert.equal(new URL(redisUrl).password, '$(REDIS_PASSWORD)', 'the nodes authenticate to Redis');
  const fromSecret = (name) => container.env.find((e) => e.name === name)?.valueFrom?.secretKeyRef?.name;
  assert.equal(fromSecret('SFU_CLUSTER_SECRET'), 'sfu-secrets', 'the cluster secret comes from the Secret');
  assert.equal(fromSecret('REDIS_PASSWORD'), 'sfu-secrets', 'the Redis password comes from the Secret');
  const tmp = makeTempDir();
  fs.writeFileSync(path.join(tmp, 'sfu.toml'), toml);
  const node = await startServer(tmp, { extraArgs: ['--config', path.join(tmp, 'sfu.toml'), '--ice-tcp', '127.0.0.1:0'] });
  await node.stop();
});

// Requirement: the systemd unit is valid for systemd (systemd-analyze verify, no warnings).
it('the systemd unit verifies', () => {
  const tmp = makeTempDir();
  fs.copyFileSync(path.join(DEPLOY, 'sfu.sample.toml'), path.join(tmp, 'sfu.toml'));
  const unit = fs.readFileSync(path.join(DEPLOY, 'sfu-server.service'), 'utf8')
    .replace('/usr/local/bin/sfu-server', SERVER_BIN)
    .replace('/etc/sfu/sfu.toml', path.join(tmp, 'sfu.toml'));
  assert.notEqual(unit, fs.readFileSync(path.join(DEPLOY, 'sfu-server.service'), 'utf8'));
  fs.writeFileSync(path.join(tmp, 'sfu-server.service'), unit);
  const result = spawnSync('systemd-analyze', ['verify', path.join(tmp, 'sfu-server.service')], { encoding: 'utf8' });
  assert.equal(result.error, undefined, 'systemd-analyze runs');
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stderr.trim(), '', 'no warnings');
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

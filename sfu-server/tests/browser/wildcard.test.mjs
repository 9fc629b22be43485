// NAT and containers: a media socket bound to 0.0.0.0 without configured advertised IPs
// advertises the host's own interface addresses (here 10.200.0.1 on a veth in a private
// network namespace), never loopback, and calls flow through them.

import { it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runInNetns } from './netns.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

// Requirement: auto-detection of interface IPs when bound to 0.0.0.0.
it('a wildcard bind advertises the interface addresses', { timeout: 90000 }, async () => {
  const result = await runInNetns(path.join(here, 'wildcard-call.mjs'), [
    'ip link add v0 type veth peer name v1',
    'ip addr add 10.200.0.1/24 dev v0',
    'ip link set v0 up',
    'ip link set v1 up',
  ]);
  assert.equal(result.error, undefined, `scenario failed: ${result.error}\n${result.log}`);
  console.log(`wildcard result: ${JSON.stringify(result)}`);
  assert.equal(result.candidates.length, 1, `candidates: ${result.candidates}`);
  assert.match(result.candidates[0], /^udp 10\.200\.0\.1$/);
  assert.ok(result.loadtest.ok, `loadtest through the advertised address: ${result.loadtest.out.join('\n')}\n${result.loadtest.stderr}`);
});

// Runs a scenario script inside a private network namespace (`unshare --net`) so tests can drop
// or police packets with nftables without touching the machine's own network. The scenario
// prints its result as a JSON line on stdout, which is what the returned promise resolves to.

import { spawn } from 'node:child_process';

/**
 * Runs `node scriptPath ...args` in a fresh network namespace, after bringing its loopback up
 * and running the shell commands `setup` (e.g. nft rules); resolves to the last JSON line printed.
 */
export function runInNetns(scriptPath, setup = [], args = []) {
  const command = [scriptPath, ...args].map((a) => JSON.stringify(a)).join(' ');
  const script = ['set -e', 'ip link set lo up', ...setup, `exec node ${command}`].join('; ');
  return new Promise((resolve, reject) => {
    const child = spawn('unshare', ['--net', '--', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = out.trim().split('\n').filter((l) => l.startsWith('{')).at(-1);
      if (!line) return reject(new Error(`no result (exit ${code}); stdout: ${out}\nstderr: ${err}`));
      resolve(JSON.parse(line));
    });
  });
}

/** The nft commands that drop every UDP packet entering the namespace, as table `table`. */
export function dropUdp(table) {
  return [
    `nft add table inet ${table}`,
    `nft add chain inet ${table} in "{ type filter hook input priority 0; }"`,
    `nft add rule inet ${table} in meta l4proto udp drop`,
  ];
}

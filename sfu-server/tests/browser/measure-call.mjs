// Measures the server's cost in a real browser call: N headless Chromium participants in one
// room, all publishing fake camera + mic, everyone receiving everyone. Prints the server's CPU
// time per forwarded RTP packet and its peak RSS. Not a test (no pass/fail): run it by hand, e.g.
//   SFU_SERVER_BIN=target/release/sfu-server node sfu-server/tests/browser/measure-call.mjs 3 30
// and record the output with the command in BENCHMARKS.md.

import fs from 'node:fs';
import {
  makeTempDir, startServer, launchBrowser, openParticipant, closeParticipant, getHealth,
  expectMediaFrom, sleep, SERVER_BIN,
} from './lib.mjs';

const participants = Number(process.argv[2] || 3);
const seconds = Number(process.argv[3] || 30);
const CLOCK_TICKS_PER_SECOND = 100;

/** utime + stime of a process, in seconds (Linux /proc). */
function cpuSeconds(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/** Peak resident set size of a process, in MiB. */
function peakRssMiB(pid) {
  const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmHWM:'));
  return Number(line.split(/\s+/)[1]) / 1024;
}

const tmp = makeTempDir('sfu-measure-');
const server = await startServer(tmp, { env: { RUST_LOG: 'warn' } });
const browser = await launchBrowser(tmp);
const peers = [];
try {
  for (let i = 0; i < participants; i++) {
    peers.push(await openParticipant(browser, server.baseUrl, { room: 'measure', name: `p${i}` }));
  }
  await Promise.all(peers.map((p) => expectMediaFrom(p, peers.filter((o) => o !== p), { growthMs: 3000 })));
  const pid = server.proc.pid;
  const cpu0 = cpuSeconds(pid);
  const fwd0 = (await getHealth(server.baseUrl)).counters.rtp_forwarded;
  await sleep(seconds * 1000);
  const cpu1 = cpuSeconds(pid);
  const health = await getHealth(server.baseUrl);
  const forwarded = health.counters.rtp_forwarded - fwd0;
  const cpu = cpu1 - cpu0;
  console.log(JSON.stringify({
    binary: SERVER_BIN,
    participants,
    seconds,
    rtp_forwarded: forwarded,
    forwarded_per_second: Math.round(forwarded / seconds),
    server_cpu_seconds: Number(cpu.toFixed(2)),
    server_cpu_percent_of_one_core: Number((100 * cpu / seconds).toFixed(1)),
    cpu_us_per_forwarded_packet: Number((1e6 * cpu / forwarded).toFixed(1)),
    peak_rss_mib: Number(peakRssMiB(pid).toFixed(1)),
  }, null, 2));
} finally {
  for (const p of peers) await closeParticipant(p);
  await browser.close().catch(() => {});
  await server.stop();
}

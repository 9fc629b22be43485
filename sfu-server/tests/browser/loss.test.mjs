// Packet loss: the call runs in its own network namespace whose loopback drops 5% of UDP
// packets on receipt (media and RTCP both ways; signaling over TCP is untouched). This machine's
// kernel has no netem qdisc, so the loss comes from an nftables input rule with a random
// number generator (an output rule would fail the sender's sendto, which Chromium retries).
// Video must keep decoding, the subscriber must NACK and receive retransmissions, and the
// server must count the NACKs it got from the subscriber and the ones it sent to the publisher.

import { it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runInNetns } from './netns.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Runs loss-call.mjs in a fresh network namespace dropping `percent`% of UDP; resolves to its JSON line. */
function runUnderLoss(percent) {
  return runInNetns(path.join(here, 'loss-call.mjs'), [
    'nft add table inet loss',
    'nft add chain inet loss in "{ type filter hook input priority 0; }"',
    `nft add rule inet loss in meta l4proto udp numgen random mod 100 "<" ${percent} drop`,
  ]);
}

// Requirement: under 5% loss video keeps decoding, NACKs flow on both legs and are answered with retransmissions.
it('a call under 5% packet loss keeps decoding video, with NACKs and retransmissions', { timeout: 120000 }, async () => {
  const result = await runUnderLoss(5);
  assert.equal(result.error, undefined, `scenario failed: ${result.error}\n${result.log}`);
  console.log(`loss result: ${JSON.stringify(result)}`);
  const fps = result.frames_decoded / (result.window_ms / 1000);
  assert.ok(fps >= 5, `only ${fps.toFixed(1)} frames/s decoded under loss`);
  assert.ok(result.packets_lost_seen_by_subscriber > 0 || result.nacks_sent_by_subscriber > 0,
    'no loss observed at all: is netem active?');
  assert.ok(result.nacks_sent_by_subscriber > 0, 'the subscriber sent no NACKs');
  assert.ok(result.retransmissions_received > 0, 'the subscriber received no retransmissions');
  assert.ok(result.server.nacks_from_subscribers > 0, 'the server counted no NACKs from subscribers');
  assert.ok(result.server.nacks_to_publishers > 0, 'the server sent no NACKs to the publisher');
});

// Bandwidth-driven layer selection: the server estimates each subscriber's downlink from TWCC
// feedback and forwards the best simulcast layer that fits. The call runs in its own network
// namespace, where bandwidth-call.mjs shapes the server's downlink to 400 kbit/s (htb) and
// lifts the limit again.

import { it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runInNetns } from './netns.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

// Requirement: a subscriber with quality "auto" gets the full layer on a free link, a lower layer
// (still decoding, reported by a `quality` message) when its downlink is limited, and the full
// layer again once the limit is gone.
it('auto quality follows the subscriber\'s downlink: full, lower under a 400 kbit/s limit, full again', { timeout: 240000 }, async () => {
  const result = await runInNetns(path.join(here, 'bandwidth-call.mjs'));
  assert.equal(result.error, undefined, `scenario failed: ${result.error}\n${JSON.stringify(result.phases)}\n${result.log}`);
  console.log(`bandwidth result: ${JSON.stringify(result)}`);
  assert.ok(result.width_while_limited < 1280, `still ${result.width_while_limited} wide under the limit`);
  assert.ok(result.frames_decoded_while_limited >= 25, `only ${result.frames_decoded_while_limited} frames in 5 s under the limit`);
  assert.ok(result.qualities_while_limited.some((q) => q === 'low' || q === 'medium'),
    `no quality message for a lower layer: ${result.qualities_while_limited}`);
  assert.equal(result.qualities.at(-1), 'high', `last quality message ${result.qualities.at(-1)}`);
});

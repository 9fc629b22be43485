// A media socket bound to 0.0.0.0 answers from the address the client reached. Here the
// server advertises only 127.0.0.2, a secondary address of this host; the kernel's own
// choice of source for a reply to 127.0.0.1 would be 127.0.0.1, which Chromium drops as an
// answer from the wrong address, so the call only connects when the server names the
// source itself.

import { it } from 'node:test';
import {
  makeTempDir, startServer, launchBrowser, closeBrowser, openParticipant, closeParticipant,
  withDiagnostics, expectMediaFrom,
} from './lib.mjs';

// Requirement: with a wildcard bind, clients that reach a secondary advertised address connect.
it('a call through a secondary address of a wildcard-bound server carries media', { timeout: 90000 }, async () => {
  let server;
  let browser;
  let A;
  let B;
  try {
    await withDiagnostics(() => ({ server, participants: [A, B] }), async () => {
      const tmp = makeTempDir('sfu-secondary-');
      server = await startServer(tmp, { udp: '0.0.0.0:0', extraArgs: ['--advertise-ip', '127.0.0.2', '--insecure'] });
      browser = await launchBrowser(tmp);
      A = await openParticipant(browser, server.baseUrl, { room: 'second', name: 'A' });
      B = await openParticipant(browser, server.baseUrl, { room: 'second', name: 'B' });
      await expectMediaFrom(B, [A]);
    });
  } finally {
    for (const p of [A, B]) await closeParticipant(p);
    await closeBrowser(browser);
    if (server) await server.stop();
  }
});

// Debian's Chromium, driven by playwright-core, for the browser tests.
import fs from 'node:fs';
import { chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Launches headless Chromium (with `extraArgs` too): {browser} or {error} (a message saying
 * what is missing). */
export async function launchChromium(extraArgs = []) {
  if (!fs.existsSync(CHROMIUM)) {
    return { error: `${CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)` };
  }
  try {
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      timeout: 30_000,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        ...extraArgs,
      ],
    });
    return { browser };
  } catch (e) {
    return { error: `could not launch ${CHROMIUM}: ${e.message}` };
  }
}

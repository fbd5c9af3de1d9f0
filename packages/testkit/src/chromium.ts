/**
 * Finds a Chromium (or Chrome) binary for browser tests: `CHROMIUM_BIN`, then
 * the usual names on PATH and their Debian paths. `pnpm test`
 * (scripts/run-tests.mjs) installs Debian's `chromium` when none is found and
 * it runs as root with apt-get; browser tests skip, saying why, when none is.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

export const HOW_TO_GET_CHROMIUM = 'no chromium binary found (Debian/Ubuntu: apt-get install -y chromium; or set CHROMIUM_BIN to a Chromium or Chrome binary)';

/** An absolute path of an executable: `name` itself when absolute, else the first on PATH. */
function resolveExecutable(name: string): string | undefined {
  const dirs = isAbsolute(name) ? [''] : (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const dir of dirs) {
    const path = dir ? join(dir, name) : name;
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The absolute path of a working Chromium (puppeteer wants a path), or undefined. */
export function findChromiumBinary(): string | undefined {
  const candidates = [process.env.CHROMIUM_BIN, 'chromium', '/usr/bin/chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'];
  for (const c of candidates) {
    const path = c ? resolveExecutable(c) : undefined;
    if (!path) continue;
    const r = spawnSync(path, ['--version'], { stdio: 'ignore', timeout: 10_000 });
    if (r.status === 0) return path;
  }
  return undefined;
}

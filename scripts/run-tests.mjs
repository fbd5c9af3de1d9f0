#!/usr/bin/env node
/**
 * `pnpm test`: makes sure the tests can get a real Redis, then runs the whole
 * vitest suite (every package). Order, as in the test helper: REDIS_URL, a
 * redis-server binary (installed from Debian's packages when missing and we
 * are root with apt-get and no Docker engine), or a Docker engine for
 * testcontainers. Otherwise it says exactly what to install and exits 1.
 * The dashboard's browser test needs Chromium: installed the same way
 * (Debian's `chromium`, when missing and we are root with apt-get); without
 * it that test is skipped and says why. `promtool check metrics` lints both
 * /metrics endpoints: Debian's `prometheus` package, installed the same way.
 */
import { spawnSync } from 'node:child_process';

const has = (cmd, args = ['--version']) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
const log = (m) => console.log(`[inferq test] ${m}`);

function ensureRedis() {
  if (process.env.REDIS_URL) return log(`using REDIS_URL=${process.env.REDIS_URL} (fault tests still start their own redis-server when one is installed)`);
  if (has(process.env.REDIS_SERVER_BIN || 'redis-server')) return log('using redis-server child processes, one per test file');
  if (has('docker', ['info'])) return log('no redis-server; using testcontainers with the Docker engine');
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot && has('apt-get', ['--version'])) {
    log('redis-server not found: installing Debian package redis-server');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const upd = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    const inst = upd.status === 0 && spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'redis-server'], { stdio: 'inherit', env });
    if (inst && inst.status === 0 && has('redis-server')) return;
  }
  console.error(
    '[inferq test] No Redis available. Do one of:\n' +
      '  - install redis-server (Debian/Ubuntu: sudo apt-get install -y redis-server; macOS: brew install redis)\n' +
      '  - set REDIS_URL=redis://host:port to an existing Redis 7\n' +
      '  - start a Docker engine (testcontainers will run redis:7-alpine)',
  );
  process.exit(1);
}

function ensureChromium() {
  const names = [process.env.CHROMIUM_BIN, 'chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'].filter(Boolean);
  if (names.some((c) => has(c))) return log('using chromium for the dashboard browser test');
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot && has('apt-get', ['--version'])) {
    log('chromium not found: installing Debian package chromium (for the dashboard browser test)');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const upd = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    const inst = upd.status === 0 && spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'chromium', 'fonts-dejavu-core'], { stdio: 'inherit', env });
    if (inst && inst.status === 0 && has('chromium')) return;
  }
  log('no chromium: the dashboard browser test is skipped (Debian/Ubuntu: apt-get install -y chromium; or set CHROMIUM_BIN)');
}

function ensurePromtool() {
  if (has(process.env.PROMTOOL_BIN || 'promtool')) return log('using promtool to lint the /metrics endpoints');
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot && has('apt-get', ['--version'])) {
    log('promtool not found: installing Debian package prometheus (for the metrics lint tests)');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const upd = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    const inst = upd.status === 0 && spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'prometheus'], { stdio: 'inherit', env });
    if (inst && inst.status === 0 && has('promtool')) return;
  }
  log('no promtool: the metrics lint tests are skipped (Debian/Ubuntu: apt-get install -y prometheus; or set PROMTOOL_BIN)');
}

ensureRedis();
ensureChromium();
ensurePromtool();
const r = spawnSync(process.platform === 'win32' ? 'npx.cmd' : 'npx', ['--no-install', 'vitest', 'run', ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(r.status ?? 1);

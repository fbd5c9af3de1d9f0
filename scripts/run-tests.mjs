#!/usr/bin/env node
/**
 * `pnpm test`: makes sure the tests can get what they need, then runs the
 * whole vitest suite (every package).
 *
 * - Redis (required). Order, as in the test helper: REDIS_URL, a
 *   redis-server binary, or a Docker engine for testcontainers. Without any,
 *   Debian's `redis-server` is installed when we are root with apt-get;
 *   otherwise it says exactly what to install and exits 1.
 * - Optional tools, each installed from Debian's packages the same way when
 *   missing (root with apt-get); without one, the tests that need it are
 *   skipped and say why: `chromium` (the dashboard's browser test),
 *   `promtool` from `prometheus` (both /metrics endpoints and the Grafana
 *   dashboard's expressions are linted), `docker-compose` (validates
 *   docker-compose.yml offline, no Docker engine needed).
 */
import { spawnSync } from 'node:child_process';

const has = (cmd, args = ['--version']) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
const log = (m) => console.log(`[inferq test] ${m}`);
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Installs Debian packages when we may (root with apt-get); true when `check()` then passes. */
function aptInstall(packages, check) {
  if (!isRoot || !has('apt-get', ['--version'])) return false;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const upd = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  const inst = upd.status === 0 && spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { stdio: 'inherit', env });
  return Boolean(inst && inst.status === 0 && check());
}

function ensureRedis() {
  if (process.env.REDIS_URL) return log(`using REDIS_URL=${process.env.REDIS_URL} (fault tests still start their own redis-server when one is installed)`);
  if (has(process.env.REDIS_SERVER_BIN || 'redis-server')) return log('using redis-server child processes, one per test file');
  if (has('docker', ['info'])) return log('no redis-server; using testcontainers with the Docker engine');
  log('redis-server not found: installing Debian package redis-server');
  if (aptInstall(['redis-server'], () => has('redis-server'))) return;
  console.error(
    '[inferq test] No Redis available. Do one of:\n' +
      '  - install redis-server (Debian/Ubuntu: sudo apt-get install -y redis-server; macOS: brew install redis)\n' +
      '  - set REDIS_URL=redis://host:port to an existing Redis 7\n' +
      '  - start a Docker engine (testcontainers will run redis:7-alpine)',
  );
  process.exit(1);
}

/** An optional tool: present, installed from `packages`, or its tests skipped. */
function ensureTool({ names, versionArgs = ['--version'], packages, usedFor, hint }) {
  const found = () => names.some((c) => c && has(c, versionArgs));
  if (found()) return log(`using ${names.find((c) => c && has(c, versionArgs))} ${usedFor}`);
  log(`${names.filter(Boolean).join(' / ')} not found: installing Debian package(s) ${packages.join(' ')} (${usedFor})`);
  if (aptInstall(packages, found)) return;
  log(`none: the tests ${usedFor} are skipped (${hint})`);
}

ensureRedis();
ensureTool({
  names: [process.env.CHROMIUM_BIN, 'chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'],
  packages: ['chromium', 'fonts-dejavu-core'],
  usedFor: 'for the dashboard browser test',
  hint: 'Debian/Ubuntu: apt-get install -y chromium; or set CHROMIUM_BIN',
});
ensureTool({
  names: [process.env.PROMTOOL_BIN, 'promtool'],
  packages: ['prometheus'],
  usedFor: 'to lint the /metrics endpoints and the Grafana dashboard',
  hint: 'Debian/Ubuntu: apt-get install -y prometheus; or set PROMTOOL_BIN',
});
ensureTool({
  names: ['docker-compose'],
  versionArgs: ['version'],
  packages: ['docker-compose'],
  usedFor: 'to validate docker-compose.yml',
  hint: 'Debian/Ubuntu: apt-get install -y docker-compose',
});
const r = spawnSync(process.platform === 'win32' ? 'npx.cmd' : 'npx', ['--no-install', 'vitest', 'run', ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(r.status ?? 1);

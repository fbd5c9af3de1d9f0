#!/usr/bin/env node
/**
 * Measures what an application installs: builds and packs the packages
 * (pnpm pack), then `npm install`s each set of tarballs into its own empty
 * temporary app and reports the size of node_modules (`du -sm`) and the
 * number of packages. The figures of README's "Install" section.
 *
 *   node scripts/measure-install.mjs
 *
 * npm reads the registry (or its cache) for third-party packages. With
 * @inferq/onnx, onnxruntime-node's install script (optional GPU downloads)
 * is skipped with ONNXRUNTIME_NODE_INSTALL=skip: the CPU binary ships in the package.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SETS = [
  ['@inferq/client', ['core', 'client']],
  ['@inferq/worker (no ONNX)', ['core', 'worker']],
  ['@inferq/worker + @inferq/onnx', ['core', 'worker', 'onnx']],
];

const work = mkdtempSync(join(tmpdir(), 'inferq-install-'));
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(npm_|pnpm_|NODE_OPTIONS$)/i.test(k)));
try {
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { stdio: 'inherit' });
  const packs = join(work, 'packs');
  mkdirSync(packs);
  for (const p of ['core', 'client', 'worker', 'onnx']) {
    execFileSync('npx', ['-y', 'pnpm@12.4.2', 'pack', '--pack-destination', packs], { cwd: join(ROOT, 'packages', p), stdio: 'ignore', env });
  }
  const tarball = (p) => join(packs, readdirSync(packs).find((f) => f.startsWith(`inferq-${p}-`)));
  const rows = [];
  for (const [label, pkgs] of SETS) {
    const app = join(work, label.replace(/\W+/g, '-'));
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...pkgs.map(tarball)], {
      cwd: app,
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...env, ONNXRUNTIME_NODE_INSTALL: 'skip' },
    });
    const mb = execFileSync('du', ['-sm', 'node_modules'], { cwd: app, encoding: 'utf8' }).split('\t')[0];
    // Installed packages: the lockfile's entries present on disk (not other platforms' optional ones).
    const lock = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8'));
    const count = Object.keys(lock.packages).filter((k) => k.startsWith('node_modules/') && existsSync(join(app, k))).length;
    rows.push(`${label.padEnd(32)} ${String(count).padStart(4)} packages ${mb.padStart(6)} MB`);
  }
  console.log(`\nnpm ${execFileSync('npm', ['--version'], { encoding: 'utf8' }).trim()}, Node ${process.version}, fresh install into an empty app, du -sm node_modules:`);
  for (const r of rows) console.log(`  ${r}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}

#!/usr/bin/env node
/**
 * `pnpm build`: compiles the published packages to dist/ (JavaScript and
 * .d.ts), each from a clean dist/ so nothing deleted or renamed lingers.
 *
 *   node scripts/build.mjs              # core, then onnx, client and worker in parallel
 *   node scripts/build.mjs core client  # only these (their @inferq deps must be built)
 *
 * Each package compiles with its tsconfig.build.json: no "source" export
 * condition, so it sees its @inferq dependencies as consumers will (their
 * dist/*.d.ts); core is built first for that reason. Core's Lua scripts are
 * copied to dist/lua. Development and tests never need this: they run the
 * TypeScript sources through the "source" condition.
 *
 * Bundles (client and worker): after tsc, esbuild turns each entry point a
 * consumer can reach (package exports and the bin's dist/cli.js) into one ES
 * module, with the code they share in dist/chunks/ (so the bin and the main
 * entry share one copy of each class), and tsc's per-file JavaScript is
 * removed (the .d.ts files stay). BullMQ and its own dependencies (luxon,
 * cron-parser, msgpackr, semver, ...) are bundled in: loading them from
 * ~250 separate CommonJS files (BullMQ 170 of them) was most of a cold start
 * (README, "Install").
 * Everything the package declares in `dependencies` or `peerDependencies`
 * (@inferq/core, ioredis, zod, prom-client, @inferq/onnx) stays an import,
 * so one copy of each is shared with the application: InferqError from
 * @inferq/core, a zod schema, an ioredis connection are the application's
 * own. The licences of the bundled packages go to dist/THIRD-PARTY-LICENSES.txt.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ORDER = [['core'], ['onnx', 'client', 'worker']];
const ALL = ORDER.flat();
const require = createRequire(import.meta.url);
const tsc = require.resolve('typescript/bin/tsc');

/** Entry points bundled per package: its exports and bin targets, as dist/<name>.js. */
const BUNDLES = {
  client: ['index', 'cli'],
  worker: ['index', 'cli', 'worker-metrics'],
};
/**
 * Imports left to run time besides the package's own dependencies: what BullMQ
 * loads only when asked for (other Redis clients, PostgreSQL, OpenTelemetry)
 * and msgpackr's optional native speed-up (a platform binary: never bundled;
 * msgpackr works without it).
 */
const ALWAYS_EXTERNAL = ['pg', 'redis', 'bullmq-otel', '@valkey/valkey-glide', 'msgpackr-extract'];
/** ES module output has no `require`; bundled CommonJS code (and BullMQ's optional `require`s) get one. */
const REQUIRE_BANNER = "import { createRequire as __inferqCreateRequire } from 'node:module';\nconst require = __inferqCreateRequire(import.meta.url);";

function run(args, cwd) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd, stdio: 'inherit' });
    child.once('error', reject);
    child.once('exit', (code, signal) => (code === 0 ? resolve() : reject(new Error(`${args.join(' ')} in ${cwd} failed (${signal ?? `exit ${code}`})`))));
  });
}

/** The npm package an input file of a bundle belongs to (`name@version`), or undefined for the package's own dist/. */
function packageOf(file) {
  const i = file.lastIndexOf('node_modules/');
  if (i < 0) return undefined;
  const parts = file.slice(i + 'node_modules/'.length).split('/');
  const name = parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
  const pkgDir = join(ROOT, file.slice(0, i), 'node_modules', name);
  return { name, dir: pkgDir, version: JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')).version };
}

function listFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listFiles(join(dir, e.name)) : [join(dir, e.name)]));
}

/** The licence texts of the bundled packages, for dist/THIRD-PARTY-LICENSES.txt. */
function thirdPartyLicenses(packages) {
  const parts = [...packages.values()]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((p) => {
      const meta = JSON.parse(readFileSync(join(p.dir, 'package.json'), 'utf8'));
      const file = readdirSync(p.dir).find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f));
      const text = file ? readFileSync(join(p.dir, file), 'utf8').trim() : `(no licence file in the package; package.json says: ${meta.license ?? 'nothing'})`;
      return `${p.name}@${p.version} (${meta.license ?? 'unknown licence'})\n\n${text}`;
    });
  return `The JavaScript files of this directory bundle the following packages.\n\n${parts.join(`\n\n${'-'.repeat(72)}\n\n`)}\n`;
}

/** Replaces tsc's per-file JavaScript in dist/ by one ES module per entry point (see the header). */
async function bundlePackage(name, dir) {
  const esbuild = require('esbuild');
  const dist = join(dir, 'dist');
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const declared = [...Object.keys(manifest.dependencies ?? {}), ...Object.keys(manifest.peerDependencies ?? {})];
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: BUNDLES[name].map((e) => join(dist, `${e}.js`)),
    outdir: dist,
    bundle: true,
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    format: 'esm',
    platform: 'node',
    target: 'node20.19',
    // BullMQ's ES module build: esbuild hoists it into plain module scope (its CommonJS build
    // would stay one wrapper function per file).
    mainFields: ['module', 'main'],
    // Class and function names as in the sources (error names, stack traces, logs).
    keepNames: true,
    // A declared dependency stays an import, with anything under it (`@inferq/core/protocol`).
    external: [...declared, ...declared.map((d) => `${d}/*`), ...ALWAYS_EXTERNAL],
    banner: { js: REQUIRE_BANNER },
    legalComments: 'none',
    metafile: true,
    write: false,
    logLevel: 'warning',
  });
  const bundled = new Map();
  for (const input of Object.keys(result.metafile.inputs)) {
    const pkg = packageOf(input);
    if (!pkg) continue;
    if (declared.includes(pkg.name)) throw new Error(`@inferq/${name}: ${pkg.name} is a declared dependency but was bundled (from ${input})`);
    bundled.set(`${pkg.name}@${pkg.version}`, pkg);
  }
  for (const file of listFiles(dist)) {
    if (file.endsWith('.js')) rmSync(file);
  }
  for (const out of result.outputFiles) {
    mkdirSync(dirname(out.path), { recursive: true });
    writeFileSync(out.path, out.contents);
  }
  writeFileSync(join(dist, 'THIRD-PARTY-LICENSES.txt'), thirdPartyLicenses(bundled));
  const bytes = result.outputFiles.reduce((n, f) => n + f.contents.length, 0);
  console.log(`build: @inferq/${name}: ${result.outputFiles.length} bundle files (${(bytes / 1024).toFixed(0)} KiB, ${bundled.size} packages bundled) in ${relative(ROOT, dist)}`);
}

async function buildPackage(name) {
  const dir = `${ROOT}packages/${name}`;
  rmSync(`${dir}/dist`, { recursive: true, force: true });
  await run([tsc, '-p', 'tsconfig.build.json'], dir);
  if (name === 'core') await run(['scripts/copy-lua.mjs'], dir);
  if (BUNDLES[name]) await bundlePackage(name, dir);
}

async function main() {
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((n) => !ALL.includes(n));
  if (unknown.length) throw new Error(`unknown package(s) ${unknown.join(', ')}; known: ${ALL.join(', ')}`);
  const t0 = performance.now();
  for (const stage of ORDER) {
    const names = stage.filter((n) => wanted.length === 0 || wanted.includes(n));
    await Promise.all(names.map(buildPackage));
  }
  const built = wanted.length ? wanted : ALL;
  console.log(`build: ${built.map((n) => `@inferq/${n}`).join(', ')} -> dist/ in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

main().catch((err) => {
  console.error(`build: ${err.message}`);
  process.exit(1);
});

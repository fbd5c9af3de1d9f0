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
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ORDER = [['core'], ['onnx', 'client', 'worker']];
const ALL = ORDER.flat();
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

function run(args, cwd) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd, stdio: 'inherit' });
    child.once('error', reject);
    child.once('exit', (code, signal) => (code === 0 ? resolve() : reject(new Error(`${args.join(' ')} in ${cwd} failed (${signal ?? `exit ${code}`})`))));
  });
}

async function buildPackage(name) {
  const dir = `${ROOT}packages/${name}`;
  rmSync(`${dir}/dist`, { recursive: true, force: true });
  await run([tsc, '-p', 'tsconfig.build.json'], dir);
  if (name === 'core') await run(['scripts/copy-lua.mjs'], dir);
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

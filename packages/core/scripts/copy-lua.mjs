#!/usr/bin/env node
/**
 * Copies src/lua (the Lua scripts and their includes) to dist/lua after
 * `tsc`: tsc emits only JavaScript, and dist/lua-scripts.js reads its
 * scripts from `./lua/` beside itself. The old dist/lua is removed first so
 * a deleted or renamed script does not linger in a build.
 *
 * Usage: run by scripts/build.mjs (pnpm build) after tsc -p tsconfig.build.json
 */
import { cpSync, existsSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const from = fileURLToPath(new URL('../src/lua/', import.meta.url));
const to = fileURLToPath(new URL('../dist/lua/', import.meta.url));

if (!existsSync(from)) {
  console.error(`copy-lua: ${from} does not exist`);
  process.exit(1);
}
rmSync(to, { recursive: true, force: true });
cpSync(from, to, { recursive: true });
console.log(`copy-lua: copied ${from} -> ${to}`);

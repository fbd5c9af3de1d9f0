#!/usr/bin/env node
// Runs the built CLI when the package was built (dist/), else the TypeScript sources through tsx.
import { existsSync } from 'node:fs';

const dist = new URL('../dist/cli.js', import.meta.url);
if (existsSync(dist)) {
  await import(dist.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/cli.ts', import.meta.url).href);
}

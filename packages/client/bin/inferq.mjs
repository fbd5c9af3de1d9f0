#!/usr/bin/env node
// The inferq CLI, compiled to dist/: plain Node, no TypeScript loader at run time.
// In the inferq repository build it first (`npx -y pnpm@12.4.2 build`), or run
// the sources: node --conditions=source --import tsx packages/client/src/cli.ts
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  console.error('inferq: dist/ is missing; in the inferq repository run `npx -y pnpm@12.4.2 build` first.');
  process.exit(1);
}
await import(cli.href);

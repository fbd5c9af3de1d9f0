import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (p: string) => fileURLToPath(new URL(`./packages/${p}/src/index.ts`, import.meta.url));

// Tests import workspace packages from their sources: no build step.
const alias = [
  { find: /^@inferq\/core\/protocol$/, replacement: fileURLToPath(new URL('./packages/core/src/protocol/index.ts', import.meta.url)) },
  { find: /^@inferq\/core$/, replacement: src('core') },
  { find: /^@inferq\/client$/, replacement: src('client') },
  { find: /^@inferq\/worker$/, replacement: src('worker') },
  { find: /^@inferq\/testkit$/, replacement: src('testkit') },
];

export default defineConfig({
  resolve: { alias },
  test: {
    include: ['packages/*/test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Test files start their own redis-server and worker processes; on two
    // cores, two files at a time keeps timing-sensitive tests honest.
    maxWorkers: 2,
    env: { INFERQ_LOG_LEVEL: process.env.INFERQ_LOG_LEVEL ?? 'silent' },
  },
});

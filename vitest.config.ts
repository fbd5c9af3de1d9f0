import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (p: string) => fileURLToPath(new URL(`./packages/${p}/src/index.ts`, import.meta.url));

// Tests import workspace packages from their sources: no build step.
const alias = {
  '@inferq/core': src('core'),
  '@inferq/client': src('client'),
  '@inferq/worker': src('worker'),
  '@inferq/testkit': src('testkit'),
};

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

import { defineConfig } from 'vitest/config';

// Tests import workspace packages from their TypeScript sources through the
// "source" export condition (each @inferq package.json maps it to src/), the
// same condition tsc (customConditions) and tsx (--conditions=source) use:
// no build step, and a stale dist/ is never what a test runs. Vite's default
// server conditions follow it.
const conditions = ['source', 'module', 'node', 'development|production'];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
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

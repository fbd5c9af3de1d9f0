/**
 * The cold-start section of `pnpm bench`: how long a fresh process takes, run
 * as users run it, from dist/ with plain `node` (no tsx, no "source"
 * condition):
 *   - `node -e 0`: Node alone, for scale;
 *   - `inferq-worker` (the published bin) with a plain JavaScript model, from
 *     spawn to its `READY` line;
 *   - a client script (import @inferq/client, one request no cache can
 *     answer, a worker already running), from spawn to the answer.
 * Each is started `starts` times one after another; the median is reported.
 * dist/ is rebuilt first when it is missing or older than a source file.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPO_ROOT, WORKER_BIN, spawnNode, type SpawnedProcess } from '@inferq/testkit';

const MODEL = fileURLToPath(new URL('./cold-start/model.mjs', import.meta.url));
const CLIENT = fileURLToPath(new URL('./cold-start/client.mjs', import.meta.url));
const BUILT = ['core', 'client', 'worker'] as const;
/** Children run as users run them: no loader or conditions inherited from the bench (tsx). */
const PLAIN_ENV: NodeJS.ProcessEnv = { NODE_OPTIONS: '', INFERQ_LOG_LEVEL: 'warn' };

export interface ColdStartRow {
  what: string;
  /** ms of each start, in order. */
  samplesMs: number[];
  medianMs: number;
  minMs: number;
  maxMs: number;
}

export interface ColdStartReport {
  starts: number;
  /** Seconds spent rebuilding dist/ first (0 when it was up to date). */
  buildSeconds: number;
  rows: ColdStartRow[];
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** Rebuilds dist/ (scripts/build.mjs) unless every package's dist/ is newer than all of its sources. */
export function ensureDist(): number {
  const stale = BUILT.some((p) => {
    const marker = join(REPO_ROOT, 'packages', p, 'dist', 'index.js');
    return !existsSync(marker) || statSync(marker).mtimeMs < newestMtime(join(REPO_ROOT, 'packages', p, 'src'));
  });
  if (!stale) return 0;
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build.mjs')], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...PLAIN_ENV } });
  if (r.status !== 0) throw new Error(`cold start: building dist/ failed (exit ${r.status})`);
  return (performance.now() - t0) / 1000;
}

function row(what: string, samplesMs: number[]): ColdStartRow {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  return { what, samplesMs, medianMs: sorted[Math.floor(sorted.length / 2)] ?? NaN, minMs: sorted[0] ?? NaN, maxMs: sorted[sorted.length - 1] ?? NaN };
}

/** Spawns `script` and resolves with ms from spawn to the first stdout line matching `line`; the process is ended by pid. */
async function timeToLine(script: string, args: string[], env: NodeJS.ProcessEnv, line: RegExp, timeoutMs: number): Promise<{ ms: number; proc: SpawnedProcess }> {
  const t0 = performance.now();
  const proc = spawnNode(script, args, { ...PLAIN_ENV, ...env });
  try {
    await proc.waitForLine(line, timeoutMs);
  } catch (err) {
    await proc.kill();
    throw err;
  }
  return { ms: performance.now() - t0, proc };
}

export async function measureColdStart(redisUrl: string, namespace: string, starts: number): Promise<ColdStartReport> {
  const buildSeconds = ensureDist();
  const workerArgs = (model: string) => ['--model', model, '--module', MODEL, '--redis', redisUrl, '--prefix', namespace];

  const node: number[] = [];
  for (let i = 0; i < starts; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, ['-e', '0'], { env: { ...process.env, ...PLAIN_ENV } });
    if (r.status !== 0) throw new Error('cold start: node -e 0 failed');
    node.push(performance.now() - t0);
  }

  const worker: number[] = [];
  for (let i = 0; i < starts; i++) {
    const { ms, proc } = await timeToLine(WORKER_BIN, workerArgs(`cold-worker-${i}`), {}, /^READY /, 30_000);
    worker.push(ms);
    await proc.stop(5000);
  }

  const client: number[] = [];
  const { proc: serving } = await timeToLine(WORKER_BIN, [...workerArgs('cold-client'), '--batch-timeout-ms', '0'], {}, /^READY /, 30_000);
  try {
    for (let i = 0; i < starts; i++) {
      const env = { REDIS_URL: redisUrl, MODEL: 'cold-client', PREFIX: namespace, INPUT: String(1000 + i) };
      const { ms, proc } = await timeToLine(CLIENT, [], env, /^ANSWER /, 30_000);
      client.push(ms);
      await proc.stop(5000);
    }
  } finally {
    await serving.stop(5000);
  }

  return {
    starts,
    buildSeconds,
    rows: [
      row('node -e 0 (Node alone, for scale)', node),
      row('inferq-worker, JS model: start to READY', worker),
      row('client script: start to first answer', client),
    ],
  };
}

export function formatColdStart(r: ColdStartReport): string {
  const lines = r.rows.map((x) => `  ${x.what.padEnd(42)} ${x.medianMs.toFixed(0).padStart(6)} ms   (min ${x.minMs.toFixed(0)}, max ${x.maxMs.toFixed(0)})`);
  const built = r.buildSeconds > 0 ? `; dist/ rebuilt first in ${r.buildSeconds.toFixed(1)} s` : '';
  return `Cold start (from dist/, plain node, median of ${r.starts} starts one after another${built}):\n${lines.join('\n')}`;
}

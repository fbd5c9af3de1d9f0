/**
 * `pnpm demo`: a newcomer's first look at inferq doing real work.
 *
 * Picks a Redis (REDIS_URL, else a local redis-server, else the embedded
 * in-process mode, and says which), starts worker and client processes,
 * sends a Zipf-skewed workload through the default ONNX model with a
 * progress bar on stderr, prints a summary on stdout and writes a
 * self-contained HTML report.
 *
 * Bounded and tidy: every child is ended by pid on success, on error and
 * on Ctrl-C; the whole run has a time bound (`--run-timeout-s`) past which
 * it stops and says what it was waiting for.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { REPO_ROOT } from '@inferq/testkit';
import { DistributedMode } from './distributed-mode.js';
import { EmbeddedMode } from './embedded-mode.js';
import { renderReport } from './html-report.js';
import type { ModeRunner, RunHooks, RunResult } from './mode-run.js';
import { DEFAULT_MODEL } from './model-facts.js';
import { HELP, UsageError, checkDemoOptions, parseDemoArgs, type DemoOptions } from './options.js';
import { ProgressBar } from './progress-bar.js';
import { chooseRedis } from './redis-setup.js';
import { buildSummary, formatSummary } from './summary.js';

const MODEL = 'default-mlp';
/** Cleanup (ending children, deleting keys) gets this long after a failure before the demo exits anyway. */
const CLEANUP_BOUND_MS = 15_000;

class InterruptedError extends Error {
  override readonly name = 'InterruptedError';
}
class RunTimeoutError extends Error {
  override readonly name = 'RunTimeoutError';
}

const say = (msg: string) => process.stderr.write(`${msg}\n`);

function stamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

function reportPath(o: DemoOptions, started: Date): string {
  // A relative --report is relative to where the user typed the command (pnpm runs scripts from the repo root).
  if (o.report) return resolve(process.env.INIT_CWD ?? process.cwd(), o.report);
  return join(REPO_ROOT, 'reports', `demo-${stamp(started)}.html`);
}

async function main(): Promise<number> {
  const wallStart = performance.now();
  const startedAt = new Date();
  let o: DemoOptions;
  try {
    o = parseDemoArgs(process.argv.slice(2));
    checkDemoOptions(o);
  } catch (err) {
    if (err instanceof UsageError) {
      say(`demo: ${err.message}\nRun with --help for the options.`);
      return 2;
    }
    throw err;
  }
  if (o.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }

  let redis: Awaited<ReturnType<typeof chooseRedis>>;
  try {
    redis = await chooseRedis(o.embedded, o.redisCluster);
  } catch (err) {
    // Only --redis-cluster fails here (the other sources fall back): say why, no stack.
    say(`demo: ${(err as Error).message}`);
    return 1;
  }
  for (const w of redis.warnings) say(`warning: ${w}`);
  // A unique prefix per run: on a shared Redis nothing of anyone else's is read, written or deleted.
  const prefix = `inferq-demo-${stamp(startedAt)}-${randomBytes(3).toString('hex')}`;
  let runner: ModeRunner;
  if (redis.mode.kind === 'embedded') {
    say('');
    say('  NOTE: running in EMBEDDED mode: no Redis, no worker or client processes.');
    say(`        Why: ${redis.mode.reason}.`);
    say('        The same workload runs through InferenceOptimizer (in-memory cache + batcher) in this process.');
    say('');
    runner = new EmbeddedMode({ options: o, model: MODEL, inputSize: DEFAULT_MODEL.inputSize });
  } else {
    const where =
      redis.mode.kind === 'external' ? `REDIS_URL ${redis.mode.url}` : redis.mode.kind === 'cluster' ? `Redis Cluster ${redis.mode.nodes}` : `started a local redis-server at ${redis.mode.url}`;
    say(`Redis: ${where} (Redis ${redis.mode.version}); key prefix ${prefix}`);
    const target = redis.clusterNodes ? { clusterNodes: redis.clusterNodes } : { redisUrl: redis.url as string };
    runner = new DistributedMode({ options: o, ...target, prefix, model: MODEL, inputSize: DEFAULT_MODEL.inputSize });
  }

  const abort = new AbortController();
  let interrupts = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupts++;
    if (interrupts > 1) {
      say(`\n${sig} again: exiting now (children are killed on exit).`);
      process.exit(130);
    }
    say(`\n${sig}: stopping every process ...`);
    abort.abort(new InterruptedError(`interrupted by ${sig}; every process it started was stopped and its Redis keys removed.`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const runTimer = setTimeout(
    () => abort.abort(new RunTimeoutError(`the demo did not finish within ${o.runTimeoutS} s (--run-timeout-s); it was waiting for: ${runner.describeWaiting()}`)),
    o.runTimeoutS * 1000,
  );

  const bar = new ProgressBar();
  const progress = { done: 0, total: o.requests, hits: 0, failed: 0, elapsedMs: 0 };
  let loadStart = 0;
  let barTimer: NodeJS.Timeout | undefined;
  const hooks: RunHooks = {
    status: (m) => say(m),
    started: () => {
      loadStart = performance.now();
      // ~5 redraws per second: smooth enough to read, cheap enough not to steal CPU from the run it shows.
      barTimer = setInterval(() => bar.update({ ...progress, elapsedMs: performance.now() - loadStart }), 200);
    },
    records: (batch) => {
      for (const r of batch) {
        progress.done++;
        if (r.outcome === 'hit') progress.hits++;
        else if (r.outcome === 'error' || r.outcome === 'timeout') progress.failed++;
      }
    },
    signal: abort.signal,
  };

  let result: RunResult | undefined;
  let failure: unknown;
  try {
    result = await runner.run(hooks);
  } catch (err) {
    failure = abort.signal.aborted ? abort.signal.reason : err;
  } finally {
    clearTimeout(runTimer);
    if (barTimer) {
      clearInterval(barTimer);
      bar.finish({ ...progress, elapsedMs: performance.now() - loadStart });
    }
    // Bounded: ending children escalates to SIGKILL, but a wedged Redis must not hold the exit hostage either.
    const cleanup = Promise.all([runner.shutdown(), redis.release(prefix)]);
    const bound = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), CLEANUP_BOUND_MS).unref());
    if ((await Promise.race([cleanup, bound])) === 'timeout') say(`warning: cleanup took over ${CLEANUP_BOUND_MS / 1000} s; exiting anyway.`);
  }

  if (failure !== undefined || !result) {
    const err = failure instanceof Error ? failure : new Error(String(failure));
    if (err instanceof InterruptedError) {
      say(`\ndemo ${err.message}`);
      return 130;
    }
    say(`\ndemo failed: ${err.message}`);
    return 1;
  }

  const summary = buildSummary({
    mode: redis.mode,
    options: o,
    model: MODEL,
    prefix,
    records: result.records,
    wallSeconds: (performance.now() - wallStart) / 1000,
    startupSeconds: result.startupSeconds,
    ...(result.redisStats ? { redisStats: result.redisStats } : {}),
    ...(result.embedded ? { embedded: result.embedded } : {}),
    clientPids: result.clientPids,
    workerPids: result.workerPids,
    childErrorLogs: result.childErrorLogs,
  });
  process.stdout.write(`\n${formatSummary(summary)}\n`);

  const path = reportPath(o, startedAt);
  const html = renderReport({
    summary,
    records: result.records,
    ...(result.batchItems ? { batchItems: result.batchItems } : {}),
    modelDescription: DEFAULT_MODEL.description,
    generatedAt: startedAt,
  });
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, html);
  process.stdout.write(`\nHTML report: ${path}\n`);
  const failed = summary.errors + summary.timeouts;
  if (failed > 0) say(`\n${failed} request(s) failed: exit code 1 (see errors / timeouts above).`);
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    say(`demo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);

/**
 * The packages as a user gets them: `pnpm build`, `pnpm pack` of @inferq/core,
 * @inferq/client and @inferq/worker, `npm install` of the three tarballs into
 * an empty application (no ONNX: onnxruntime-node is not installed, and no
 * TypeScript loader), then:
 *   - `npx inferq-worker` serves a plain JavaScript model module from dist/;
 *   - a client script run with plain `node` gets its answers and typed errors;
 *   - `builtin:onnx-default` fails with a typed error naming @inferq/onnx;
 *   - a small TypeScript consumer type-checks against the packed .d.ts files
 *     (tsc of this repository), and internals are not importable.
 * npm reads the registry (or its cache) for third-party dependencies. Every
 * step is bounded; the whole file takes well under 3 minutes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, startTestRedis, type TestRedis } from '@inferq/testkit';

const PNPM = ['-y', 'pnpm@12.4.2'];
const PACKED = ['core', 'client', 'worker'] as const;
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
/** The whole file's time budget: every step's timeout is cut to what is left of it. */
const BUDGET_MS = 170_000;
let budgetEnd = Date.now() + BUDGET_MS;
const left = (capMs: number) => Math.max(1000, Math.min(capMs, budgetEnd - Date.now()));

/** The child's environment: no npm/pnpm script variables, no NODE_OPTIONS (no loader, no extra conditions). */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(npm_|pnpm_|NODE_OPTIONS$|INIT_CWD$)/i.test(k)) env[k] = v;
  }
  return { ...env, ...extra };
}

interface Started {
  child: ChildProcess;
  out: string[];
  err(): string;
  exited: Promise<number | null>;
  /** SIGTERM to its process group (npx runs the bin in a child), SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<void>;
}

const started: Started[] = [];

function start(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = cleanEnv()): Started {
  const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const out: string[] = [];
  let err = '';
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    out.push(...lines);
  });
  child.stderr!.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-20_000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, s);
    } catch {
      // already gone
    }
  };
  const s: Started = {
    child,
    out,
    err: () => err,
    exited,
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      signal('SIGTERM');
      const t = setTimeout(() => signal('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
  started.push(s);
  return s;
}

/** Runs a command to completion within `timeoutMs`; rejects with its output on a non-zero exit. */
async function run(cmd: string, args: string[], cwd: string, timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<{ out: string; err: string }> {
  const p = start(cmd, args, cwd, env);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void p.stop(1000);
  }, timeoutMs);
  const code = await p.exited;
  clearTimeout(timer);
  const result = { out: p.out.join('\n'), err: p.err() };
  const how = timedOut ? `timed out after ${timeoutMs} ms` : `exited ${code}`;
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) ${how}:\n${result.out.slice(-3000)}\n${result.err.slice(-3000)}`);
  return result;
}

async function waitForLine(p: Started, match: RegExp, timeoutMs: number): Promise<string> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const line = p.out.find((l) => match.test(l));
    if (line) return line;
    if (p.child.exitCode !== null) throw new Error(`exited (${p.child.exitCode}) before ${match}:\n${p.err().slice(-3000)}`);
    if (Date.now() > until) throw new Error(`timed out waiting for ${match}:\n${p.err().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const MODEL_MJS = `// A plain JavaScript model: { x } -> { y: x * x }; { fail: true } fails that item alone.
export default async (inputs) => inputs.map((i) => (i.fail ? new Error('cannot square ' + i.x) : { y: i.x * i.x }));
`;

const CLIENT_MJS = `import { InferenceClient, InferqError, ErrorCode, TimeoutError, ModelError } from '@inferq/client';

const client = new InferenceClient({ redis: process.env.REDIS_URL, model: process.env.MODEL, prefix: process.env.PREFIX });
const results = await client.inferBatch([{ x: 2 }, { x: 3 }, { x: 4 }], { timeoutMs: 20000 });
let failure;
try {
  await client.infer({ x: 5, fail: true }, { timeoutMs: 20000 });
} catch (err) {
  failure = { inferq: err instanceof InferqError, model: err instanceof ModelError, code: err.code, expected: ErrorCode.MODEL_FAILED, message: err.message };
}
console.log('RESULT ' + JSON.stringify({ outputs: results.map((r) => r.output), batchSizes: results.map((r) => r.batchSize), failure, timeoutError: typeof TimeoutError }));
await client.close();
`;

const CONSUMER_TS = `import {
  InferenceClient,
  ErrorCode,
  InferqError,
  TimeoutError,
  type ClientInferenceResult,
  type InferOptions,
  type InferenceClientOptions,
  type InferenceStats,
} from '@inferq/client';
import { InferenceWorker, loadModelModule, type InferenceWorkerOptions, type ModelModule } from '@inferq/worker';
import { InferenceOptimizer, modelKeys, type Quantization } from '@inferq/core';
import { ENVELOPE_VERSION } from '@inferq/core/protocol';
// @ts-expect-error internals are not part of the worker's API
import { BatchPipeline } from '@inferq/worker';
// @ts-expect-error Lua plumbing is not part of core's main entry
import { callScript } from '@inferq/core';

type In = { x: number };
type Out = { y: number };

const square: ModelModule<In, Out> = { run: async (xs) => xs.map(({ x }) => ({ y: x * x })) };
const workerOptions: InferenceWorkerOptions<In, Out> = { redis: 'redis://127.0.0.1:6379', model: 'square', module: square, config: { maxBatchSize: 16 } };
const clientOptions: InferenceClientOptions<In> = { redis: 'redis://127.0.0.1:6379', model: 'square', defaultTimeoutMs: 5000 };
const precision: Quantization = 'FP32';

export async function main(): Promise<number> {
  const worker = new InferenceWorker<In, Out>(workerOptions);
  await worker.start();
  const client = new InferenceClient<In, Out>(clientOptions);
  const options: InferOptions = { useCache: true, timeoutMs: 1000 };
  try {
    const r: ClientInferenceResult<Out> = await client.infer({ x: 3 }, options);
    const stats: InferenceStats = await client.stats();
    return r.output.y + stats.totalRequests + ENVELOPE_VERSION + modelKeys('square').stats.length + precision.length;
  } catch (err) {
    if (err instanceof TimeoutError) return err.code === ErrorCode.TIMEOUT ? -1 : -2;
    if (err instanceof InferqError) return -3;
    throw err;
  } finally {
    await client.close();
    await worker.stop();
  }
}

export const optimizer = new InferenceOptimizer<In, Out>({ model: async (xs) => xs.map(({ x }) => ({ y: x })) });
export const loaded: Promise<ModelModule> = loadModelModule('./model.mjs');
export const unused = [BatchPipeline, callScript];
`;

const TSCONFIG = (typeRoot: string) => ({
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    lib: ['ES2023'],
    strict: true,
    noEmit: true,
    skipLibCheck: false,
    typeRoots: [typeRoot],
    types: ['node'],
  },
  files: ['consumer.ts'],
});

describe('packed packages in a fresh npm application', () => {
  let work: string;
  let app: string;
  let redis: TestRedis;

  beforeAll(async () => {
    budgetEnd = Date.now() + BUDGET_MS;
    work = mkdtempSync(join(tmpdir(), 'inferq-packaging-'));
    const packs = join(work, 'packs');
    app = join(work, 'app');
    mkdirSync(packs);
    mkdirSync(app);
    const redisStarted = startTestRedis();
    await run(process.execPath, ['scripts/build.mjs'], REPO_ROOT, left(90_000), cleanEnv());
    await Promise.all(PACKED.map((p) => run(npx, [...PNPM, 'pack', '--pack-destination', packs], join(REPO_ROOT, 'packages', p), left(60_000))));
    const tarballs = readdirSync(packs).filter((f) => f.endsWith('.tgz')).map((f) => join(packs, f));
    expect(tarballs).toHaveLength(3);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'inferq-packaging-app', private: true, type: 'module' }, null, 2));
    await run(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...tarballs], app, left(100_000));
    writeFileSync(join(app, 'model.mjs'), MODEL_MJS);
    writeFileSync(join(app, 'client.mjs'), CLIENT_MJS);
    redis = await redisStarted;
  }, BUDGET_MS);

  afterAll(async () => {
    await Promise.all(started.map((p) => p.stop(2000)));
    await redis?.cleanup();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('installs lean: no onnxruntime-node, no TypeScript loader, bins from dist/', () => {
    const nm = join(app, 'node_modules');
    for (const p of PACKED) expect(existsSync(join(nm, '@inferq', p, 'dist', 'index.js'))).toBe(true);
    for (const absent of ['onnxruntime-node', 'onnx-proto', '@inferq/onnx', 'tsx', 'esbuild', 'typescript']) {
      expect(existsSync(join(nm, absent)), `${absent} must not be installed`).toBe(false);
    }
    expect(existsSync(join(nm, '@inferq', 'core', 'src'))).toBe(false);
    expect(existsSync(join(nm, '.bin', 'inferq-worker'))).toBe(true);
    expect(existsSync(join(nm, '.bin', 'inferq'))).toBe(true);
  });

  it('npx inferq-worker serves a JavaScript model; a plain-node client gets answers and typed errors', async () => {
    const model = 'packaged';
    const worker = start(npx, ['--no', '--', 'inferq-worker', '--model', model, '--module', './model.mjs', '--redis', redis.url, '--prefix', redis.prefix, '--batch-timeout-ms', '20'], app);
    await waitForLine(worker, /^READY /, left(30_000));
    const client = await run(process.execPath, ['client.mjs'], app, left(30_000), cleanEnv({ REDIS_URL: redis.url, MODEL: model, PREFIX: redis.prefix }));
    const line = client.out.split('\n').find((l) => l.startsWith('RESULT '));
    expect(line, client.err).toBeDefined();
    const result = JSON.parse(line!.slice('RESULT '.length));
    expect(result.outputs).toEqual([{ y: 4 }, { y: 9 }, { y: 16 }]);
    expect(result.failure).toMatchObject({ inferq: true, model: true, code: 'INFERQ_MODEL_FAILED', expected: 'INFERQ_MODEL_FAILED' });
    expect(result.failure.message).toContain('cannot square 5');
    expect(result.timeoutError).toBe('function');

    const stats = await run(npx, ['--no', '--', 'inferq', 'stats', '--model', model, '--json', '--redis', redis.url, '--prefix', redis.prefix], app, left(30_000));
    expect(JSON.parse(stats.out)).toMatchObject({ model, totalRequests: 4 });
    await worker.stop();
  });

  it('builtin:onnx-default without @inferq/onnx fails at start with a typed error naming the package', async () => {
    const p = start(npx, ['--no', '--', 'inferq-worker', '--model', 'onnx', '--module', 'builtin:onnx-default', '--redis', redis.url], app);
    const timer = setTimeout(() => void p.stop(1000), left(30_000));
    const code = await p.exited;
    clearTimeout(timer);
    expect(code).toBe(1);
    expect(p.err()).toContain('@inferq/onnx');
    expect(p.err()).toContain('npm install @inferq/onnx');
  });

  it('a TypeScript consumer type-checks against the packed .d.ts files', async () => {
    writeFileSync(join(app, 'consumer.ts'), CONSUMER_TS);
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(TSCONFIG(join(REPO_ROOT, 'node_modules', '@types')), null, 2));
    await run(process.execPath, [TSC, '-p', 'tsconfig.json'], app, left(60_000));
  });
});

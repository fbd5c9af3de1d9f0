/**
 * The packages as a user gets them: `pnpm build`, `pnpm pack` of every
 * published package (@inferq/core, client, worker and onnx), `npm install` of
 * the core, client and worker tarballs into an empty application (no ONNX:
 * onnxruntime-node is not installed, and no TypeScript loader), then:
 *   - every tarball carries LICENSE (the repository's) and a README, and a
 *     manifest fit to publish: license, repository, keywords, engines; no
 *     devDependencies, scripts, `workspace:` ranges or `source` conditions;
 *   - both bins answer `--version` with their package's version, and
 *     `--help` exits 0 at the top level and for every subcommand;
 *   - the client and core tarballs install into another empty directory
 *     with `npm install --offline` (npm's cache, filled by the first
 *     install), and the client tarball alone does not (it needs core's);
 *   - `npx inferq-worker` serves a plain JavaScript model module from dist/;
 *   - a client script run with plain `node` gets its answers and typed errors;
 *   - `builtin:onnx-default` fails with a typed error naming @inferq/onnx;
 *   - a small TypeScript consumer type-checks against the packed .d.ts files
 *     (tsc of this repository), and internals are not importable.
 * npm reads the registry (or its cache) for third-party dependencies. Every
 * step is bounded; the whole file takes well under 3 minutes.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, startTestRedis, type TestRedis } from '@inferq/testkit';

const PNPM = ['-y', 'pnpm@12.4.2'];
/** Every package that is not private; ONNX is packed and checked but not installed (onnxruntime-node is ~290 MB). */
const PUBLISHED = ['core', 'client', 'worker', 'onnx'] as const;
const PACKED = ['core', 'client', 'worker'] as const;
const CLIENT_COMMANDS = ['stats', 'clear-cache', 'reset-stats', 'metrics', 'dashboard', 'set-shards', 'help'];
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
/** The whole file's time budget: every step's timeout is cut to what is left of it. */
const BUDGET_MS = 200_000;
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

const CLIENT_MJS = `import { InferenceClient, InferqError, ErrorCode, TimeoutError, ModelError, isInferqError } from '@inferq/client';

const client = new InferenceClient({ redis: process.env.REDIS_URL, model: process.env.MODEL, prefix: process.env.PREFIX });
const results = await client.inferBatch([{ x: 2 }, { x: 3 }, { x: 4 }], { timeoutMs: 20000 });
let failure;
try {
  await client.infer({ x: 5, fail: true }, { timeoutMs: 20000 });
} catch (err) {
  failure = { inferq: err instanceof InferqError, model: err instanceof ModelError, guard: isInferqError(err, ErrorCode.MODEL_FAILED), code: err.code, expected: ErrorCode.MODEL_FAILED, message: err.message };
}
console.log('RESULT ' + JSON.stringify({ outputs: results.map((r) => r.output), batchSizes: results.map((r) => r.batchSize), failure, timeoutError: typeof TimeoutError }));
await client.close();
`;

const CONSUMER_TS = `import {
  InferenceClient,
  ErrorCode,
  InferqError,
  TimeoutError,
  isInferqError,
  type ClientInferenceResult,
  type InferOptions,
  type InferenceClientOptions,
  type InferenceStats,
} from '@inferq/client';
import { InferenceWorker, loadModelModule, isInferqError as isInferqErrorW, type InferenceWorkerOptions, type ModelModule } from '@inferq/worker';
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
    if (isInferqError(err, ErrorCode.QUEUE_FULL)) return err.code.length;
    if (isInferqErrorW(err)) return -Object.keys(err.details).length;
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
  files: ['consumer.ts', ...PACKED.map((p) => `readme-${p}.ts`)],
});

/** The ```ts blocks of a README, as one TypeScript module. */
function readmeExamples(readme: string): string {
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
  return `${blocks.join('\n')}\nexport {};\n`;
}

describe('packed packages in a fresh npm application', () => {
  let work: string;
  let app: string;
  let redis: TestRedis;
  /** Tarball path by package (core, client, worker, onnx). */
  const tgz = new Map<string, string>();

  beforeAll(async () => {
    budgetEnd = Date.now() + BUDGET_MS;
    work = mkdtempSync(join(tmpdir(), 'inferq-packaging-'));
    const packs = join(work, 'packs');
    app = join(work, 'app');
    mkdirSync(packs);
    mkdirSync(app);
    const redisStarted = startTestRedis();
    await run(process.execPath, ['scripts/build.mjs'], REPO_ROOT, left(90_000), cleanEnv());
    await Promise.all(PUBLISHED.map((p) => run(npx, [...PNPM, 'pack', '--pack-destination', packs], join(REPO_ROOT, 'packages', p), left(60_000))));
    for (const p of PUBLISHED) {
      const file = readdirSync(packs).find((f) => f.startsWith(`inferq-${p}-`) && f.endsWith('.tgz'));
      expect(file, `the tarball of @inferq/${p}`).toBeDefined();
      tgz.set(p, join(packs, file!));
    }
    const tarballs = PACKED.map((p) => tgz.get(p)!);
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

  it('every tarball carries the LICENSE and a README, and a manifest fit to publish', () => {
    const license = readFileSync(join(REPO_ROOT, 'LICENSE'), 'utf8');
    expect(license).toMatch(/^MIT License/);
    for (const p of PUBLISHED) {
      const file = tgz.get(p)!;
      // tar's output in full (run() keeps whole lines only; a packed package.json ends without a newline).
      const tar = (args: string[]) => execFileSync('tar', args, { encoding: 'utf8', timeout: 20_000 });
      const entries = tar(['-tzf', file]).split('\n');
      expect(entries, p).toContain('package/LICENSE');
      expect(entries, p).toContain('package/README.md');
      const read = (entry: string) => tar(['-xzOf', file, `package/${entry}`]);
      expect((read('LICENSE')).trim(), `${p}: LICENSE is the repository's`).toBe(license.trim());
      const readme = read('README.md');
      expect(readme, p).toContain(`# @inferq/${p}`);
      expect(readme, p).toContain(`npm install`);
      expect(readme, p).toMatch(/```ts\n/);
      expect(readme, p).toContain('https://github.com/inferq/inferq');
      const manifest = JSON.parse(read('package.json')) as Record<string, unknown>;
      expect(manifest, p).toMatchObject({
        name: `@inferq/${p}`,
        license: 'MIT',
        repository: { type: 'git', url: expect.stringContaining('github.com/inferq/inferq'), directory: `packages/${p}` },
        engines: { node: expect.stringMatching(/^>=20/) },
      });
      expect(manifest.keywords, p).toEqual(expect.arrayContaining(['inferq']));
      for (const devOnly of ['devDependencies', 'scripts', 'packageManager']) expect(manifest, `${p}: ${devOnly} must not be packed`).not.toHaveProperty(devOnly);
      const text = JSON.stringify(manifest);
      expect(text, `${p}: no workspace: ranges`).not.toContain('workspace:');
      expect(text, `${p}: no "source" export condition`).not.toContain('"source"');
      expect(text, `${p}: no private workspace package`).not.toContain('@inferq/testkit');
    }
  });

  it('both bins answer --version with their package version, and --help exits 0 everywhere', async () => {
    const bin = (name: string) => join(app, 'node_modules', '.bin', name);
    const version = (p: string) => (JSON.parse(readFileSync(join(app, 'node_modules', '@inferq', p, 'package.json'), 'utf8')) as { version: string }).version;
    const [client, worker] = await Promise.all([run(bin('inferq'), ['--version'], app, left(20_000)), run(bin('inferq-worker'), ['--version'], app, left(20_000))]);
    expect(client.out.trim()).toBe(version('client'));
    expect(worker.out.trim()).toBe(version('worker'));
    const helps: Array<[string, string[]]> = [
      ['inferq', ['--help']],
      ['inferq', ['-h']],
      ...CLIENT_COMMANDS.map((c): [string, string[]] => ['inferq', [c, '--help']]),
      ['inferq-worker', ['--help']],
    ];
    // All at once: each is a short-lived process that touches no Redis.
    const outs = await Promise.all(helps.map(([b, args]) => run(bin(b), args, app, left(20_000))));
    outs.forEach((o, i) => expect(o.out, helps[i]!.join(' ')).toMatch(/Usage: inferq/));
    // No command at all is a usage error, not a request for help.
    const bare = start(bin('inferq'), [], app);
    expect(await bare.exited).toBe(2);
    expect(bare.err()).toContain('Usage: inferq');
  });

  it('the client and core tarballs install offline into an empty directory; the client tarball alone does not', async () => {
    // npm's cache holds the third-party dependencies since the install in beforeAll.
    const offline = join(work, 'offline-app');
    mkdirSync(offline);
    writeFileSync(join(offline, 'package.json'), JSON.stringify({ name: 'inferq-offline-app', private: true, type: 'module' }, null, 2));
    await run(npm, ['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error', tgz.get('core')!, tgz.get('client')!], offline, left(60_000));
    const probe = await run(process.execPath, ['--input-type=module', '-e', "import { InferenceClient, isInferqError } from '@inferq/client'; console.log(typeof InferenceClient, typeof isInferqError);"], offline, left(20_000));
    expect(probe.out.trim()).toBe('function function');
    const { version } = JSON.parse(readFileSync(join(offline, 'node_modules', '@inferq', 'client', 'package.json'), 'utf8')) as { version: string };
    expect((await run(join(offline, 'node_modules', '.bin', 'inferq'), ['--version'], offline, left(20_000))).out.trim()).toBe(version);

    const alone = join(work, 'client-alone');
    mkdirSync(alone);
    writeFileSync(join(alone, 'package.json'), JSON.stringify({ name: 'inferq-client-alone', private: true }, null, 2));
    const p = start(npm, ['install', '--offline', '--no-audit', '--no-fund', tgz.get('client')!], alone);
    expect(await p.exited).not.toBe(0);
    expect(p.err()).toMatch(/@inferq(\/|%2f)core/i);
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
    expect(result.failure).toMatchObject({ inferq: true, model: true, guard: true, code: 'INFERQ_MODEL_FAILED', expected: 'INFERQ_MODEL_FAILED' });
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

  it('a TypeScript consumer and the READMEs\' examples type-check against the packed .d.ts files', async () => {
    writeFileSync(join(app, 'consumer.ts'), CONSUMER_TS);
    // The packed READMEs' examples compile against the packed types too (ONNX's is not installed here).
    for (const p of PACKED) writeFileSync(join(app, `readme-${p}.ts`), readmeExamples(readFileSync(join(app, 'node_modules', '@inferq', p, 'README.md'), 'utf8')));
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(TSCONFIG(join(REPO_ROOT, 'node_modules', '@types')), null, 2));
    await run(process.execPath, [TSC, '-p', 'tsconfig.json'], app, left(60_000));
  });
});

/**
 * Crash isolation: an input that makes the worker PROCESS die (the model
 * calls process.exit, as a native crash or an abort would) fails alone with
 * INFERQ_MODEL_CRASHED, and every other request — of its envelope, of its
 * flight's other callers, and of innocent jobs the dying workers held — is
 * answered. Real processes: a redis-server, two `inferq-worker` processes
 * restarted by a small supervisor when they die, two clients.
 */
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { modelKeys, readStats, type InferqError } from '@inferq/core';
import { InferenceClient } from '@inferq/client';
import { CLIENT_CLI, spawnNode, startWorkerProcess, type SpawnedProcess } from '@inferq/testkit';
import { useTestRedis } from '@inferq/testkit/harness';

const MODEL_MODULE = fileURLToPath(new URL('./fixtures/crash-model.mjs', import.meta.url));
const LATENT_MODULE = fileURLToPath(new URL('./fixtures/latent-model.mjs', import.meta.url));
/** The code a crashing input is answered with (a stable wire code). */
const MODEL_CRASHED = 'INFERQ_MODEL_CRASHED';
type In = { x: number; crash?: boolean };
type Out = { y: number };

const h = useTestRedis({ ownServer: true });

interface Fleet {
  /** Every worker process started, dead or alive. */
  readonly all: SpawnedProcess[];
  /** Exits seen while the fleet was running (not the final stop). */
  readonly deaths: Array<{ pid: number; code: number | null; signal: NodeJS.Signals | null; at: number }>;
  /** Resolves at the n-th death. */
  death(n: number): Promise<void>;
  /** One more supervised worker. */
  add(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Supervised worker processes: one that dies is started again (at most
 * `maxRestarts` times in all), the way a process supervisor would.
 */
function fleet(o: { prefix: string; model: string; args: string[]; env: NodeJS.ProcessEnv; maxRestarts: number; module?: string; onStart?: (p: SpawnedProcess) => void }): Fleet {
  const all: SpawnedProcess[] = [];
  const deaths: Fleet['deaths'] = [];
  const onDeath: Array<() => void> = [];
  const launching = new Set<Promise<void>>();
  let stopping = false;
  let restarts = 0;
  const launch = (): Promise<void> => {
    const started = startWorkerProcess({ redisUrl: h.redis.url, model: o.model, module: o.module ?? MODEL_MODULE, prefix: o.prefix, args: o.args, env: o.env }).then((p) => {
      all.push(p);
      o.onStart?.(p);
      void p.exited.then(({ code, signal }) => {
        if (stopping) return;
        deaths.push({ pid: p.pid, code, signal, at: Date.now() });
        for (const f of onDeath) f();
        if (restarts < o.maxRestarts) {
          restarts++;
          void launch().catch(() => undefined);
        }
      });
    });
    launching.add(started);
    void started.finally(() => launching.delete(started)).catch(() => undefined);
    return started;
  };
  return {
    all,
    deaths,
    add: launch,
    death: (n) =>
      new Promise<void>((resolve) => {
        const check = () => deaths.length >= n && resolve();
        onDeath.push(check);
        check();
      }),
    async stop() {
      stopping = true;
      await Promise.allSettled([...launching]);
      // Each by its pid: SIGTERM, SIGKILL after the grace period.
      await Promise.all(all.map((p) => p.stop(3000)));
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function modelLog(path: string): Array<{ pid: number; batch: number; input: In }> {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { pid: number; batch: number; input: In }) : [];
}

describe('crash isolation', () => {
  it('an input that kills the worker process fails alone; its envelope, its flight and the other jobs are answered', async () => {
    const prefix = h.redis.newPrefix();
    const model = 'crashing';
    const dir = mkdtempSync(join(tmpdir(), 'inferq-crash-'));
    const log = join(dir, 'model.log');
    const workers = fleet({
      prefix,
      model,
      // Short locks so that a dead worker's jobs are seen stalled within ~2 s.
      args: ['--lock-duration-ms', '1000', '--stalled-interval-ms', '1000', '--batch-timeout-ms', '20', '--stop-timeout-ms', '1000'],
      env: { MODEL_LOG: log, INFERQ_LOG_LEVEL: 'warn' },
      maxRestarts: 8,
    });
    h.defer(() => workers.stop());
    // One worker first, so that the first crash takes an innocent job down with it.
    await workers.add();
    const a = new InferenceClient<In, Out>({ redis: h.redis.url, model, prefix });
    const b = new InferenceClient<In, Out>({ redis: h.redis.url, model, prefix });
    h.defer(() => a.close({ timeoutMs: 100 }), () => b.close({ timeoutMs: 100 }));

    const t0 = Date.now();
    // B: an innocent envelope, in the model when the worker dies (its first input makes the batch take 400 ms).
    const bInputs: In[] = [101, 102, 103, 104, 105, 106, 107, 108].map((x) => (x === 101 ? { x, sleep: 400 } : { x }));
    const bPending = Promise.allSettled(bInputs.map((x) => b.infer(x, { timeoutMs: 45_000 })));
    for (let i = 0; i < 200 && !modelLog(log).some((s) => s.input.x === 101); i++) await sleep(10);
    // A: one envelope of 8 requests, the poison in the middle.
    const aInputs: In[] = [1, 2, 3, 4, 5, 6, 7, 8].map((x) => (x === 5 ? { x, crash: true } : { x }));
    const aPending = a.inferBatchSettled(aInputs, { timeoutMs: 45_000 });
    // B again, a moment later: the same poison input joins A's flight (single-flight across processes).
    await sleep(20);
    const bPoison = b.infer({ x: 5, crash: true }, { timeoutMs: 45_000 }).then(
      (value) => ({ status: 'fulfilled' as const, value }),
      (reason: unknown) => ({ status: 'rejected' as const, reason }),
    );
    await workers.death(1);
    await workers.add(); // from now on two workers (the dead one is restarted too)
    const [aOut, bOut, poisonB] = await Promise.all([aPending, bPending, bPoison]);
    const settledMs = Date.now() - t0;

    const describeOutcome = (o: PromiseSettledResult<{ output: Out }>) => (o.status === 'fulfilled' ? `y=${o.value.output.y}` : (o.reason as InferqError).code);
    const summary = {
      settledMs,
      a: aOut.map(describeOutcome),
      b: bOut.map(describeOutcome),
      bPoison: describeOutcome(poisonB),
      deaths: workers.deaths.map((d) => ({ pid: d.pid, code: d.code, afterMs: d.at - t0 })),
    };
    console.log('crash isolation:', JSON.stringify(summary));

    // The poison input, for both of its callers: the typed error, alone.
    const poisonA = aOut[4]!;
    expect(describeOutcome(poisonA)).toBe(MODEL_CRASHED);
    expect(describeOutcome(poisonB)).toBe(MODEL_CRASHED);
    expect((poisonA as PromiseRejectedResult).reason.message).toMatch(/killed the model's process 2 times alone in the model .*a fresh process whose first model call it was/);
    // Everything else: its own output.
    aOut.forEach((o, i) => {
      if (i !== 4) expect(describeOutcome(o), `a[${i}]`).toBe(`y=${aInputs[i]!.x ** 2}`);
    });
    bInputs.forEach((inp, i) => expect(describeOutcome(bOut[i]!), `b[${i}]`).toBe(`y=${inp.x ** 2}`));
    expect(settledMs).toBeLessThan(40_000);

    // The poison entered the model 3 times: once in an ordinary batch, once alone in a worker, then
    // alone in a fresh probe process as its first call (the proof): 2 worker deaths, 1 probe death.
    const poisonCalls = modelLog(log).filter((s) => s.input.crash === true);
    expect(poisonCalls.map((s) => s.batch).slice(1)).toEqual([1, 1]);
    expect(workers.deaths.length).toBe(2);
    const workerPids = new Set(workers.all.map((p) => p.pid));
    expect(workerPids.has((poisonCalls[2] as { pid: number }).pid)).toBe(false); // the probe is no worker
    // Logged before the answer, with the job and the item; and the innocent job B was re-run alone too.
    // (The answer came through Redis; the log line through a pipe, which the test may read a moment later.)
    type LogLine = { msg: string; jobId?: string; crashes?: number; err?: { code?: string } };
    const workerLogs = () => workers.all.flatMap((p) => p.stderr().split('\n')).filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
    const convicted = (l: LogLine) => l.err?.code === MODEL_CRASHED && l.crashes === 2 && l.jobId !== undefined;
    for (let i = 0; i < 100 && !workerLogs().some(convicted); i++) await sleep(20);
    const logs = workerLogs();
    expect(logs.some(convicted)).toBe(true);
    const rerunJobs = new Set(logs.filter((l) => l.msg.startsWith('job re-run after its worker died')).map((l) => l.jobId));
    expect(rerunJobs.size).toBeGreaterThanOrEqual(2);

    // Nothing cached for the poison: the 15 good inputs only.
    const conn = h.redis.connect();
    expect(await conn.hlen(modelKeys(model, prefix).cacheVal)).toBe(15);
    const stats = await readStats(conn, model, prefix);
    expect(stats.crashedItems).toBe(1);
    expect(stats.isolatedCalls).toBeGreaterThan(0);

    // The fleet is healthy afterwards.
    expect((await a.infer({ x: 9 }, { timeoutMs: 10_000 })).output.y).toBe(81);

    // Convicted for the whole fleet: the same input in a new job (another client, with and
    // without the cache) is answered at once by whichever worker takes it, and no worker dies.
    // (Every worker reads the fleet's convictions every 2 s: REFRESH_MS of convicted-inputs.ts.)
    await sleep(2_500);
    const deathsBefore = workers.deaths.length;
    const c = new InferenceClient<In, Out>({ redis: h.redis.url, model, prefix });
    h.defer(() => c.close({ timeoutMs: 100 }));
    const t1 = Date.now();
    const again = await Promise.all(
      [true, false].map((useCache) => c.infer({ x: 5, crash: true }, { useCache, timeoutMs: 20_000 }).then(() => undefined, (e: unknown) => e as InferqError)),
    );
    for (const e of again) {
      expect(e?.code).toBe(MODEL_CRASHED);
      expect(e?.message).toMatch(/convicted earlier/);
    }
    expect(Date.now() - t1).toBeLessThan(5_000);
    await sleep(1_500);
    expect(workers.deaths.length).toBe(deathsBefore);
    expect(modelLog(log).filter((s) => s.input.crash === true)).toHaveLength(poisonCalls.length);

    // The operator lists the conviction and pardons it (inferq convicted).
    const cli = async (...args: string[]) => {
      const p = spawnNode(CLIENT_CLI, ['convicted', '--model', model, '--prefix', prefix, '--redis', h.redis.url, ...args]);
      const { code } = await p.exited;
      return { code, out: p.lines.join('\n') };
    };
    const listed = await cli('--json');
    expect(listed.code).toBe(0);
    const rows = (JSON.parse(listed.out) as { convicted: Array<{ cacheKey: string; deaths: number }> }).convicted;
    expect(rows).toHaveLength(1);
    expect(rows[0]!.deaths).toBe(2);
    expect((await cli('--pardon', rows[0]!.cacheKey)).code).toBe(0);
    expect(await conn.hlen(modelKeys(model, prefix).convicted)).toBe(0);
    expect((await cli('--pardon', rows[0]!.cacheKey)).code).toBe(1);

    await workers.stop();
    for (const p of workers.all) expect(p.child.exitCode !== null || p.child.signalCode !== null, `worker ${p.pid} ended`).toBe(true);
  }, 60_000);

  it('a model with latent state cannot frame an innocent input: conviction needs a kill of a fresh process', async () => {
    // Input A ({ corrupt: true }) is answered but corrupts its process's model; the next call there
    // dies. Each fresh worker is corrupted by A before it re-runs the innocent input D's job, so D is
    // alone in the model every time a worker dies. Before: D convicted (INFERQ_MODEL_CRASHED, 24 h).
    const prefix = h.redis.newPrefix();
    const model = 'latent';
    const dir = mkdtempSync(join(tmpdir(), 'inferq-latent-'));
    const log = join(dir, 'model.log');
    const a = new InferenceClient<In & { corrupt?: boolean }, Out>({ redis: h.redis.url, model, prefix });
    h.defer(() => a.close({ timeoutMs: 100 }));
    // Every worker that starts is corrupted at once by a fresh A (its first call).
    let corruptions = 0;
    const corruptNext = () => {
      corruptions++;
      void a.infer({ x: 1000 + corruptions, corrupt: true }, { useCache: false, timeoutMs: 20_000 }).catch(() => undefined);
    };
    const workers = fleet({
      prefix,
      model,
      module: LATENT_MODULE,
      args: ['--lock-duration-ms', '1000', '--stalled-interval-ms', '1000', '--batch-timeout-ms', '5', '--stop-timeout-ms', '1000'],
      env: { MODEL_LOG: log, INFERQ_LOG_LEVEL: 'warn' },
      maxRestarts: 8,
      onStart: () => corruptNext(),
    });
    h.defer(() => workers.stop());
    await workers.add();
    for (let i = 0; i < 200 && corruptions > 0 && !modelLog(log).some((s) => s.input.x === 1001); i++) await sleep(20);
    await sleep(100);
    const t0 = Date.now();
    const d = await a.infer({ x: 7 }, { useCache: false, timeoutMs: 45_000 }).then(
      (r) => `y=${r.output.y}`,
      (e: unknown) => (e as InferqError).code,
    );
    const deaths = workers.deaths.length;
    console.log('latent state:', JSON.stringify({ d, ms: Date.now() - t0, deaths, corruptions }));
    // The innocent input gets its own output; nobody is convicted.
    expect(d).toBe('y=49');
    expect(await h.redis.connect().hlen(modelKeys(model, prefix).convicted)).toBe(0);
    expect(deaths).toBeGreaterThanOrEqual(1);
  }, 60_000);
});

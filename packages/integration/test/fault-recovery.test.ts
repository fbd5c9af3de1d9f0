/**
 * No request waits out its timeout through a worker crash and a Redis crash.
 *
 * 2 worker processes (CLI) and 3 client processes send 9,000 requests (a third
 * repeat earlier inputs, some of another client, so single-flight and the cache
 * take part). At ~25% of the results worker w1 is SIGKILLed mid-batch and a
 * replacement w3 started; at ~50% redis-server is SIGKILLed and restarted on the
 * same port and data directory (AOF, fsync always) ~500 ms later. Workers and
 * clients reconnect by themselves. Every request is answered exactly once,
 * correctly, and well within its 20 s timeout.
 *
 * INFERQ_FAULT_RUNS=n runs the scenario n times in a row (fresh prefix and
 * processes each time), for a manual soak check.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { modelKeys } from '@inferq/core';
import { RedisServerProcess, spawnNode, startWorkerProcess, type SpawnedProcess } from '@inferq/testkit';

const MODEL_MODULE = fileURLToPath(new URL('./fixtures/square-model.mjs', import.meta.url));
const CLIENT_SCRIPT = fileURLToPath(new URL('./fixtures/client-soak.ts', import.meta.url));

const RUNS = Math.max(1, Math.floor(Number(process.env.INFERQ_FAULT_RUNS ?? 1)) || 1);
const CLIENTS = 3;
const PER_CLIENT = 3000;
const TOTAL = CLIENTS * PER_CLIENT;
const TIMEOUT_MS = 20_000;
const RUN_BUDGET_MS = 100_000;
/** Children log their warnings to stderr (kept by the testkit) for diagnosis. */
const CHILD_ENV = { INFERQ_LOG_LEVEL: process.env.INFERQ_CHILD_LOG_LEVEL ?? 'warn' };

type In = { x: number; sleep?: number };
interface Line {
  i: number;
  x: number;
  y?: number;
  code?: string | null;
  name?: string;
  error?: string;
  latencyMs: number;
  worker?: string | null;
}

/**
 * Per client 3,000 inputs: two of three fresh (unique across clients, a third
 * of them with a 2-5 ms sleep so batches take time), one of three a repeat:
 * of this client's recent input, of another client's input at about the same
 * position (likely in flight there: single-flight across processes), or of
 * any earlier input of a third client (likely cached).
 */
function makeInputs(): In[][] {
  const per: In[][] = Array.from({ length: CLIENTS }, () => []);
  let fresh = 0;
  for (let k = 0; k < PER_CLIENT; k++) {
    for (let c = 0; c < CLIENTS; c++) {
      const mine = per[c] as In[];
      let input: In;
      if (k % 3 === 2) {
        const kind = Math.floor(k / 3) % 3;
        if (kind === 0) input = mine[k - 1 - ((k * 31) % Math.min(k, 12))] as In;
        else if (kind === 1) input = (per[(c + 1) % CLIENTS] as In[])[k - 1 - (k % 2)] as In;
        else input = (per[(c + 2) % CLIENTS] as In[])[(k * 7919) % (k - 1)] as In;
      } else {
        const x = ++fresh;
        input = x % 3 === 0 ? { x, sleep: 2 + (x % 4) } : { x };
      }
      mine.push(input);
    }
  }
  return per;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function lastProgress(p: SpawnedProcess): number {
  for (let j = p.lines.length - 1; j >= 0; j--) {
    const m = /^PROGRESS (\d+)$/.exec(p.lines[j] as string);
    if (m) return Number(m[1]);
  }
  return 0;
}

/** Diagnosis: the BullMQ job hash and queue events of every job named in a failure, times relative to the run's start. */
async function dumpJobs(failures: Line[], prefix: string, model: string, t0: number, dir: string): Promise<void> {
  const ids = [...new Set(failures.map((f) => /Job (\S+) /.exec(f.error ?? '')?.[1]).filter((x): x is string => x !== undefined))];
  if (ids.length === 0) return;
  const keys = modelKeys(model, prefix);
  const base = `${keys.queuePrefix}:${keys.queueName}`;
  const conn = new Redis(serverUrl, { maxRetriesPerRequest: 3 });
  conn.on('error', () => undefined);
  try {
    const out: Record<string, unknown> = {};
    for (const id of ids) {
      const job = await conn.hgetall(`${base}:${id}`);
      const rel = (v: string | undefined) => (v ? Number(v) - t0 : undefined);
      const events: Array<[string, string[]]> = [];
      let cursor = '-';
      for (let n = 0; n < 100; n++) {
        const page = (await conn.xrange(`${base}:events`, cursor, '+', 'COUNT', 1000)) as Array<[string, string[]]>;
        for (const e of page) if (e[1].includes(id) && e[1][e[1].indexOf('jobId') + 1] === id) events.push(e);
        if (page.length < 1000) break;
        cursor = `(${(page[page.length - 1] as [string, string[]])[0]}`;
      }
      out[id] = {
        stc: job.stc, atm: job.atm, ats: job.ats, defa: job.defa, failedReason: job.failedReason,
        timestamp: rel(job.timestamp), processedOn: rel(job.processedOn), finishedOn: rel(job.finishedOn), processedBy: job.pb,
        items: (() => { try { return (JSON.parse(job.data ?? '{}') as { items?: unknown[] }).items?.length; } catch { return undefined; } })(),
        events: events.map(([eid, f]) => `${Number(eid.split('-')[0]) - t0} ${f.join(' ')}`.slice(0, 200)),
      };
    }
    writeFileSync(join(dir, 'failed-jobs.json'), JSON.stringify(out, null, 2));
    console.log(`[fault-recovery] failed jobs (ms from run start):\n${JSON.stringify(out, null, 1)}`);
  } finally {
    conn.disconnect();
  }
}
let serverUrl = '';

describe('fault recovery', () => {
  let server: RedisServerProcess;
  const procs: SpawnedProcess[] = [];

  beforeAll(async () => {
    server = await RedisServerProcess.start({ appendFsync: 'always' });
    serverUrl = server.url;
  });
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.stop(3000)));
  });
  afterAll(async () => {
    await Promise.all(procs.splice(0).map((p) => p.kill()));
    await server?.destroy();
  });

  for (let run = 1; run <= RUNS; run++) {
    it(`run ${run}/${RUNS}: no request waits out its timeout through a worker crash and a Redis crash`, async () => {
      const t0 = Date.now();
      const at = () => Date.now() - t0;
      const timings: Record<string, number> = {};
      const dir = mkdtempSync(join(tmpdir(), 'inferq-fault-'));
      const prefix = `fault-${process.pid}-${run}-${Date.now().toString(36)}`;
      const model = 'square';
      if (!server.running) await server.restart(); // a failed earlier run may have left it down

      const worker = (id: string) =>
        startWorkerProcess({
          redisUrl: server.url,
          model,
          module: MODEL_MODULE,
          prefix,
          args: ['--max-batch-size', '32', '--batch-timeout-ms', '5', '--lock-duration-ms', '2000', '--stalled-interval-ms', '500', '--cache-max-size', '100000', '--worker-id', id],
          env: CHILD_ENV,
        });
      const workers = new Map<string, SpawnedProcess>();
      for (const id of ['w1', 'w2']) {
        const w = await worker(id);
        procs.push(w);
        workers.set(id, w);
      }
      timings.workersReady = at();

      const inputs = makeInputs();
      const files = inputs.map((list, c) => {
        const f = join(dir, `inputs-${c}.json`);
        writeFileSync(f, JSON.stringify(list));
        return f;
      });
      const env = { ...CHILD_ENV, REDIS_URL: server.url, MODEL: model, PREFIX: prefix, WINDOW: '100', TIMEOUT_MS: String(TIMEOUT_MS) };
      const clients = files.map((f) => spawnNode(CLIENT_SCRIPT, [f], env));
      procs.push(...clients);
      const tClients = at();
      const progress = () => clients.reduce((n, c) => n + lastProgress(c), 0);
      const waitProgress = async (target: number) => {
        for (let n = 0; progress() < target; n++) {
          if (at() > RUN_BUDGET_MS) throw new Error(`progress stuck at ${progress()}/${TOTAL} (waiting for ${target})`);
          if (clients.some((c) => c.child.exitCode !== null || c.child.signalCode !== null)) break;
          await sleep(10);
        }
      };

      // Fault 1: a worker dies mid-batch; a replacement starts at once.
      await waitProgress(TOTAL * 0.25);
      timings.killWorkerAtProgress = progress();
      timings.killWorker = at();
      await workers.get('w1')!.kill();
      const w3 = await worker('w3');
      procs.push(w3);
      workers.set('w3', w3);
      timings.w3Ready = at();

      // Fault 2: Redis dies (fsync always: what it acknowledged survives) and comes back after ~500 ms.
      await waitProgress(TOTAL * 0.5);
      timings.killRedisAtProgress = progress();
      timings.killRedis = at();
      await server.kill();
      await sleep(500);
      await server.restart();
      timings.redisUp = at();

      const settled = await Promise.allSettled(clients.map((c) => c.waitForLine(/^DONE$/, Math.max(1000, RUN_BUDGET_MS - at()))));
      timings.done = at();
      timings.clientsPhase = timings.done - tClients;

      // Every stderr goes to a file for diagnosis.
      for (const [id, w] of workers) writeFileSync(join(dir, `worker-${id}.stderr`), w.stderr());
      clients.forEach((c, n) => writeFileSync(join(dir, `client-${n}.stderr`), c.stderr()));
      clients.forEach((c, n) => writeFileSync(join(dir, `client-${n}.stdout`), c.lines.join('\n')));

      const missing: string[] = [];
      const duplicated: string[] = [];
      const wrong: Line[] = [];
      const timeouts: Line[] = [];
      const slow: Line[] = [];
      const failures: Array<Line & { client: number }> = [];
      let maxLatency = 0;
      const byWorker: Record<string, number> = {};
      clients.forEach((c, n) => {
        const lines = c.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
        const seen = new Map<number, number>();
        for (const l of lines) {
          seen.set(l.i, (seen.get(l.i) ?? 0) + 1);
          maxLatency = Math.max(maxLatency, l.latencyMs);
          if (l.latencyMs >= TIMEOUT_MS) slow.push(l);
          if (l.code === 'INFERQ_TIMEOUT') timeouts.push(l);
          if (l.error !== undefined) failures.push({ ...l, client: n });
          else {
            if (l.x !== inputs[n]?.[l.i]?.x || l.y !== l.x * l.x) wrong.push(l);
            if (l.worker) byWorker[l.worker] = (byWorker[l.worker] ?? 0) + 1;
          }
        }
        for (let i = 0; i < PER_CLIENT; i++) {
          const k = seen.get(i) ?? 0;
          if (k === 0) missing.push(`c${n}#${i}`);
          else if (k > 1) duplicated.push(`c${n}#${i}`);
        }
      });
      const failureCodes: Record<string, number> = {};
      for (const f of failures) failureCodes[f.code ?? `no code (${f.name})`] = (failureCodes[f.code ?? `no code (${f.name})`] ?? 0) + 1;
      const summary = {
        run,
        ok: settled.every((s) => s.status === 'fulfilled') && missing.length + duplicated.length + wrong.length + timeouts.length + slow.length + failures.length === 0,
        timings,
        maxLatencyMs: maxLatency,
        byWorker,
        failureCodes,
        missing: missing.length,
        duplicated: duplicated.length,
        dir,
      };
      console.log(`[fault-recovery] ${JSON.stringify(summary)}`);
      if (failures.length) {
        console.log(`[fault-recovery] run ${run} failures (first 20):\n${failures.slice(0, 20).map((f) => JSON.stringify(f)).join('\n')}`);
        await dumpJobs(failures, prefix, model, t0, dir).catch((err: unknown) => console.log(`[fault-recovery] job dump failed: ${String(err)}`));
      }
      if (existsSync(join(server.dir, 'redis.log'))) copyFileSync(join(server.dir, 'redis.log'), join(dir, 'redis.log'));

      for (const s of settled) if (s.status === 'rejected') throw s.reason; // every client printed DONE
      expect(missing.slice(0, 20), 'requests without a result line').toEqual([]);
      expect(duplicated.slice(0, 20), 'requests with more than one result line').toEqual([]);
      expect(wrong.slice(0, 20), 'wrong outputs').toEqual([]);
      expect(timeouts.slice(0, 20), 'requests that waited out their timeout').toEqual([]);
      expect(slow.slice(0, 20), `requests that took >= ${TIMEOUT_MS} ms`).toEqual([]);
      // Every request succeeded: a crash is recovered from, not reported to callers.
      expect(failureCodes, 'failed requests by error code').toEqual({});
      // The replacement worker took over the load of the dead one.
      expect(byWorker.w3 ?? 0).toBeGreaterThan(0);
      expect(at()).toBeLessThan(RUN_BUDGET_MS);
      rmSync(dir, { recursive: true, force: true }); // kept only when the run failed
    }, RUN_BUDGET_MS + 15_000);
  }
});

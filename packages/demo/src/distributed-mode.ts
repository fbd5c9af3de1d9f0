/**
 * The production shape, on one machine: worker processes (the real
 * `inferq-worker` CLI serving `builtin:onnx-default`) and client processes
 * (each an application instance embedding InferenceClient), all talking
 * through Redis. Workers and clients start at the same time (model loading
 * and tsx startup overlap); the load starts when every one of them is ready.
 *
 * Every child is a `SpawnedProcess` from the testkit, ended by its pid
 * (SIGTERM, then SIGKILL after a grace period) on success, on error and on
 * Ctrl-C.
 */
import { fileURLToPath } from 'node:url';
import { readStats } from '@inferq/core';
import { WORKER_CLI, spawnNode, type SpawnedProcess } from '@inferq/testkit';
import { errorLogLines } from './child-errors.js';
import { sleep } from './load-generator.js';
import { aborted, type ModeRunner, type RunHooks, type RunResult } from './mode-run.js';
import type { DemoOptions } from './options.js';
import { controlConnection } from './redis-setup.js';
import { fromRow, parseMessage, type ClientProcessConfig, type RequestRecord } from './protocol.js';
import { splitRequests } from './workload.js';

const CLIENT_SCRIPT = fileURLToPath(new URL('./client-process.ts', import.meta.url));
/** Worker startup builds the 52 MB model and an onnxruntime session: seconds, more on a busy machine. */
const WORKER_READY_TIMEOUT_MS = 60_000;
const CLIENT_READY_TIMEOUT_MS = 60_000;
/** Children log at warn and above only: info lines would be noise here, and the summary reports error lines. */
const CHILD_ENV = { INFERQ_LOG_LEVEL: 'warn' };
/** SIGTERM first (a worker finishes the batches in hand), SIGKILL after this long. */
const STOP_GRACE_MS = 5000;

/** Where the processes meet: one Redis (its URL), or a Redis Cluster (its seed nodes, host:port). */
export type DistributedSetup = (
  | { redisUrl: string; clusterNodes?: undefined }
  | { clusterNodes: string[]; redisUrl?: undefined }
) & {
  options: DemoOptions;
  prefix: string;
  model: string;
  inputSize: number;
};

interface Child {
  name: string;
  proc: SpawnedProcess;
}

export class DistributedMode implements ModeRunner {
  private readonly children: Child[] = [];
  private waiting = 'starting';
  private shutdownDone: Promise<void> | undefined;

  constructor(private readonly s: DistributedSetup) {}

  describeWaiting(): string {
    return this.waiting;
  }

  async run(hooks: RunHooks): Promise<RunResult> {
    const { options: o, prefix, model, redisUrl, clusterNodes } = this.s;
    const t0 = performance.now();
    const control = controlConnection(clusterNodes ? { cluster: clusterNodes } : redisUrl, 'inferq-demo:parent');
    control.on('error', () => undefined);
    try {
      // The Redis URL goes by env, not argv: a password in it would otherwise show in every `ps` listing.
      // Workers (the inferq-worker CLI) and clients read REDIS_CLUSTER_NODES before REDIS_URL: set to the run's cluster, or emptied (= unset).
      const childEnv = clusterNodes ? { ...CHILD_ENV, REDIS_CLUSTER_NODES: clusterNodes.join(',') } : { ...CHILD_ENV, REDIS_URL: redisUrl, REDIS_CLUSTER_NODES: '' };
      hooks.status(`starting ${o.workers} inferq-worker process${o.workers > 1 ? 'es' : ''} (each builds the ONNX model) and ${o.clients} client process${o.clients > 1 ? 'es' : ''}; this takes a few seconds ...`);
      const workerArgs = [
        '--model', model,
        '--module', 'builtin:onnx-default',
        '--prefix', prefix,
        '--max-batch-size', String(o.batchSize),
        '--batch-timeout-ms', String(o.batchTimeoutMs),
        '--enable-caching', String(o.useCache),
        '--cache-max-size', String(o.cacheSize),
      ];
      const workers = Array.from({ length: o.workers }, (_, k) => {
        const id = `worker-${k + 1}`;
        const proc = spawnNode(WORKER_CLI, [...workerArgs, '--worker-id', id], childEnv);
        this.children.push({ name: id, proc });
        return { id, proc };
      });
      const goKey = `${prefix}:demo:go`;
      const shares = splitRequests(o.requests, o.clients);
      const clients = shares.map((requests, k) => {
        const cfg: ClientProcessConfig = {
          clientIndex: k,
          prefix,
          model,
          goKey,
          requests,
          inFlight: o.inFlight,
          openRatePerSec: o.openRate / o.clients,
          useCache: o.useCache,
          cacheMaxSize: o.cacheSize,
          timeoutMs: o.requestTimeoutMs,
          seed: o.seed,
          poolSize: o.poolSize,
          zipfS: o.zipfS,
          inputSize: this.s.inputSize,
          startTimeoutMs: WORKER_READY_TIMEOUT_MS + 30_000,
        };
        const proc = spawnNode(CLIENT_SCRIPT, [JSON.stringify(cfg)], childEnv);
        this.children.push({ name: `client ${k + 1}`, proc });
        return { index: k, proc, requests };
      });

      this.waiting = 'worker and client processes to start (READY / ready lines)';
      await Promise.race([
        Promise.all([
          ...workers.map((w) => w.proc.waitForLine(/^READY /, WORKER_READY_TIMEOUT_MS)),
          ...clients.map((c) => c.proc.waitForLine(/^\{"t":"ready"/, CLIENT_READY_TIMEOUT_MS)),
        ]),
        aborted(hooks.signal),
      ]);
      const startupSeconds = (performance.now() - t0) / 1000;
      hooks.status(`all ${o.workers} worker${o.workers > 1 ? "s" : ""} and ${o.clients} client${o.clients > 1 ? "s" : ""} ready after ${startupSeconds.toFixed(1)} s; sending ${o.requests.toLocaleString('en-US')} requests`);

      // One LPUSH of N tokens: each client's BLPOP takes one, so they all start within a round trip of each other.
      await control.multi().lpush(goKey, ...clients.map(() => 'go')).pexpire(goKey, 60_000).exec();
      hooks.started();

      const records: RequestRecord[] = [];
      const cursor = clients.map(() => 0);
      const done = clients.map(() => false);
      const finished = clients.map(() => 0);
      for (;;) {
        for (const c of clients) {
          const lines = c.proc.lines;
          const batch: RequestRecord[] = [];
          let at = cursor[c.index] as number;
          while (at < lines.length) {
            const m = parseMessage(lines[at++] as string);
            cursor[c.index] = at;
            if (!m) continue;
            if (m.t === 'rows') for (const row of m.rows) batch.push(fromRow(c.index, row));
            else if (m.t === 'done') done[c.index] = true;
            else if (m.t === 'fatal') throw new Error(`client ${c.index + 1} failed: ${m.message}\n${tail(c.proc.stderr())}`);
          }
          if (batch.length) {
            for (const r of batch) records.push(r);
            finished[c.index] = (finished[c.index] as number) + batch.length;
            hooks.records(batch);
          }
          if (!done[c.index] && c.proc.child.exitCode !== null && cursor[c.index] === lines.length) {
            throw new Error(`client ${c.index + 1} (pid ${c.proc.pid}) exited with code ${c.proc.child.exitCode} before finishing\n${tail(c.proc.stderr())}`);
          }
        }
        for (const w of workers) {
          if (w.proc.child.exitCode !== null || w.proc.child.signalCode !== null) {
            throw new Error(`${w.id} (pid ${w.proc.pid}) exited during the run (code ${w.proc.child.exitCode}, signal ${w.proc.child.signalCode})\n${tail(w.proc.stderr())}`);
          }
        }
        if (done.every(Boolean)) break;
        const counts = clients.map((c) => `client ${c.index + 1}: ${finished[c.index]}/${c.requests}`);
        this.waiting = `requests to finish (${counts.join(', ')})`;
        if (hooks.signal.aborted) throw hooks.signal.reason instanceof Error ? hooks.signal.reason : new Error(String(hooks.signal.reason));
        await sleep(100);
      }

      // Clients flushed their stats on close; workers write theirs with each batch. So the counters are complete now.
      this.waiting = 'Redis stats (readStats)';
      const redisStats = await readStats(control, model, prefix);
      const workerPids = new Map(workers.map((w) => [w.id, w.proc.pid]));
      const clientPids = new Map(clients.map((c) => [c.index, c.proc.pid]));
      this.waiting = 'worker processes to stop';
      await this.shutdown();
      const childErrorLogs = this.children
        .map((c) => ({ name: `${c.name} (pid ${c.proc.pid})`, ...errorLogLines(c.proc.stderr()) }))
        .filter((c) => c.lines > 0);
      return { records, startupSeconds, redisStats, clientPids, workerPids, childErrorLogs };
    } finally {
      control.disconnect();
    }
  }

  /**
   * SIGTERM every child by pid (workers finish the batches in hand), SIGKILL
   * after 5 s. A child that needed the SIGKILL is named: a worker that does
   * not stop on SIGTERM is a bug worth seeing.
   */
  shutdown(): Promise<void> {
    this.shutdownDone ??= Promise.all(
      this.children.map(async (c) => {
        const alive = c.proc.child.exitCode === null && c.proc.child.signalCode === null;
        const t0 = performance.now();
        const r = await c.proc.stop(STOP_GRACE_MS).catch(() => undefined);
        if (alive && r?.signal === 'SIGKILL') {
          process.stderr.write(`warning: ${c.name} (pid ${c.proc.pid}) did not exit within ${STOP_GRACE_MS / 1000} s of SIGTERM; killed (SIGKILL).\n`);
        } else if (alive && performance.now() - t0 > 2000) {
          process.stderr.write(`note: ${c.name} (pid ${c.proc.pid}) took ${((performance.now() - t0) / 1000).toFixed(1)} s to stop.\n`);
        }
      }),
    ).then(() => undefined);
    return this.shutdownDone;
  }
}

function tail(text: string, lines = 15): string {
  const t = text.trim().split('\n').slice(-lines).join('\n');
  return t ? `--- last stderr lines ---\n${t}` : '(no stderr output)';
}

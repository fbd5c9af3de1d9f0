/**
 * inferq on a Redis Cluster: 6 `redis-server --cluster-enabled yes`
 * processes on free ports (3 masters, 3 replicas), started once for this
 * file. Worker processes through the real CLI (`--redis-cluster`,
 * `--queue-shards 3`) and client processes (`REDIS_CLUSTER_NODES`):
 *   - the multi-process end-to-end run answers every request correctly,
 *     exactly once, each distinct input computed once, stats consistent;
 *   - with 3 shards the model's keys are found on all 3 masters;
 *   - a master killed with SIGKILL mid-run (its replica promoted) leaves
 *     every request answered or rejected with a typed error by its
 *     deadline, none hung.
 * Skipped, saying why, where redis-server or redis-cli (7+) is missing.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from 'ioredis';
import { isErrorCode, readStats } from '@inferq/core';
import { shardKeys } from '@inferq/core/protocol';
import { InferenceClient } from '@inferq/client';
import { RedisClusterProcess, clusterSupport, spawnNode, startWorkerProcess, type SpawnedProcess } from '@inferq/testkit';

const MODEL_MODULE = fileURLToPath(new URL('./fixtures/square-model.mjs', import.meta.url));
const CLIENT_SCRIPT = fileURLToPath(new URL('./fixtures/client-process.ts', import.meta.url));

interface Line {
  i: number;
  x: number;
  y?: number;
  cached?: boolean;
  coalesced?: boolean;
  worker?: string | null;
  error?: string;
  code?: string | null;
}

const support = clusterSupport();
if (!support.ok) console.warn(`redis-cluster.test.ts skipped: ${support.reason}`);

describe.skipIf(!support.ok)('on a local Redis Cluster (3 masters, 3 replicas)', () => {
  let cluster: RedisClusterProcess;
  let conn: Cluster;
  const procs: SpawnedProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'inferq-cluster-'));
  const prefix = `iqc${process.pid}`;

  beforeAll(async () => {
    cluster = await RedisClusterProcess.start();
    conn = new Cluster(cluster.startupNodes.map((u) => ({ host: '127.0.0.1', port: Number(new URL(u).port) })));
  }, 90_000);
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    conn?.disconnect();
    await cluster?.stop();
  });

  const nodesArg = () => cluster.startupNodes.map((u) => u.replace('redis://', '')).join(',');
  const workerProc = (model: string, id: string, log: string) =>
    startWorkerProcess({
      redisUrl: cluster.startupNodes[0] as string,
      model,
      module: MODEL_MODULE,
      prefix,
      args: ['--redis-cluster', nodesArg(), '--queue-shards', '3', '--max-batch-size', '32', '--batch-timeout-ms', '10', '--num-workers', '2', '--cache-max-size', '30000', '--worker-id', id, '--lock-duration-ms', '5000', '--stalled-interval-ms', '2000'],
      env: { MODEL_LOG: log },
    });
  const clientProc = (model: string, inputs: Array<{ x: number; sleep?: number }>, name: string, extra: Record<string, string> = {}) => {
    const f = join(dir, `${name}.json`);
    writeFileSync(f, JSON.stringify(inputs));
    const p = spawnNode(CLIENT_SCRIPT, [f], { REDIS_CLUSTER_NODES: nodesArg(), MODEL: model, PREFIX: prefix, QUEUE_SHARDS: '3', WINDOW: '50', ...extra });
    procs.push(p);
    return p;
  };
  const results = (p: SpawnedProcess) => p.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);

  it('2 worker processes x 3 client processes, 3 shards: every request answered once, each input computed once', async () => {
    const model = 'square';
    const log = join(dir, 'model.log');
    const workers = await Promise.all([workerProc(model, 'w1', log), workerProc(model, 'w2', log)]);
    procs.push(...workers);
    // 3 clients x 600 requests; a third repeat inputs of any client.
    let fresh = 0;
    const seen: number[] = [];
    const inputs = [0, 1, 2].map((c) =>
      Array.from({ length: 600 }, (_, k) => {
        if (k % 3 === 2 && seen.length > 0) return { x: seen[(k * 7919 + c) % seen.length] as number };
        seen.push(++fresh);
        return { x: fresh };
      }),
    );
    const clients = inputs.map((xs, c) => clientProc(model, xs, `inputs-${c}`));
    await Promise.all(clients.map((c) => c.waitForLine(/^DONE$/, 120_000)));

    const byWorker = new Set<string>();
    clients.forEach((c, n) => {
      const lines = results(c);
      expect(lines).toHaveLength(600);
      expect(new Set(lines.map((l) => l.i)).size).toBe(600);
      for (const l of lines) {
        expect(l.error).toBeUndefined();
        expect(l.x).toBe(inputs[n]?.[l.i]?.x);
        expect(l.y).toBe(l.x * l.x);
        if (l.worker) byWorker.add(l.worker);
      }
    });
    expect([...byWorker].sort()).toEqual(['w1', 'w2']);
    const computed = readFileSync(log, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { input: { x: number } }).input.x);
    expect(new Set(computed).size).toBe(computed.length);
    expect(computed.length).toBe(fresh);
    const stats = await readStats(conn, model, prefix);
    expect(stats.totalRequests).toBe(1800);
    expect(stats.cacheHits + stats.cacheMisses).toBe(stats.totalRequests);
    expect(stats.batchItems + stats.coalesced + stats.workerCacheHits).toBe(stats.cacheMisses);
    expect(stats.errors).toBe(0);

    // The 3 shards' keys live on the 3 masters.
    const shards = shardKeys(model, prefix, 3);
    const owners = new Set<number>();
    for (const k of shards) {
      expect(await conn.exists(k.cacheLru)).toBe(1);
      owners.add((await cluster.masterForKey(k.cacheLru)).port);
    }
    expect(owners.size).toBe(3);
    expect(new Set((await cluster.masters()).map((m) => m.port))).toEqual(owners);
  }, 180_000);

  it('a master killed mid-run: every request answered by its deadline, none failed, none hung', async () => {
    const model = 'failover';
    const log = join(dir, 'failover.log');
    const workers = await Promise.all([workerProc(model, 'f1', log), workerProc(model, 'f2', log)]);
    procs.push(...workers);
    // A steady stream of at least 3 s: 4,000 requests, 20 in flight, a model call of 10 ms, 15 s timeouts.
    const inputs = Array.from({ length: 4000 }, (_, i) => ({ x: 100_000 + i, sleep: 10 }));
    const timeoutMs = 15_000;
    const started = Date.now();
    const client = clientProc(model, inputs, 'failover', { TIMEOUT_MS: String(timeoutMs), WINDOW: '20' });
    await client.waitForLine(/^INFLIGHT$/, 30_000);
    await new Promise((r) => setTimeout(r, 500));
    // Kill the master of shard 1 while requests flow through it.
    const victim = await cluster.masterForKey(shardKeys(model, prefix, 3)[1]!.cacheLru);
    expect(client.lines.includes('DONE'), 'the run ended before the kill').toBe(false);
    const promoted = await cluster.killMaster(victim.port);
    expect(promoted).not.toBe(victim.port);
    // Every request settles by its deadline: the last one started no later than the end of the
    // run, so the whole run ends within (its duration + one timeout + slack).
    await client.waitForLine(/^DONE$/, 120_000);
    const elapsed = Date.now() - started;
    const lines = results(client);
    expect(lines).toHaveLength(inputs.length);
    expect(new Set(lines.map((l) => l.i)).size).toBe(inputs.length);
    let answered = 0;
    const codes = new Map<string, number>();
    for (const l of lines) {
      if (l.error === undefined) {
        expect(l.y).toBe(l.x * l.x);
        answered++;
      } else {
        // A typed error, never a raw Redis one.
        expect(isErrorCode(l.code), `untyped error: ${l.error}`).toBe(true);
        codes.set(l.code as string, (codes.get(l.code as string) ?? 0) + 1);
      }
    }
    console.log(`failover run: ${answered}/${lines.length} answered, errors ${JSON.stringify(Object.fromEntries(codes))}, ${elapsed} ms`);
    // Every request is answered: one caught in the failover window (its node's connection closed,
    // CLUSTERDOWN) is sent again by its client after a backoff, not failed.
    expect(Object.fromEntries(codes)).toEqual({});
    expect(answered).toBe(lines.length);
    // After the failover the model serves again: a new client's request is answered.
    const after = new InferenceClient<{ x: number }, { y: number }>({ redis: { cluster: cluster.startupNodes }, model, prefix, queueShards: 3 });
    try {
      const r = await after.infer({ x: 12 }, { timeoutMs: 20_000 });
      expect(r.output.y).toBe(144);
    } finally {
      await after.close();
    }
  }, 240_000);
});

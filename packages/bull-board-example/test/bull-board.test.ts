/**
 * The bull-board setup of docs/bull-board.md, as a real process (src/server.ts)
 * against a real Redis, a real worker process (inferq-worker, 2 queue shards)
 * and a client: the board lists every shard's queue, shows the completed
 * envelopes the client keeps (keepJobs) with their inputs as JSON values, and
 * refuses every change (retry, clean, edit, pause) because each adapter is
 * read-only. Through bull-board's JSON API: no browser needed.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { InferenceClient } from '@inferq/client';
import { shardKeys } from '@inferq/core/protocol';
import { spawnNode, startTestRedis, startWorkerProcess, type SpawnedProcess, type TestRedis } from '@inferq/testkit';

const SERVER = fileURLToPath(new URL('../src/server.ts', import.meta.url));
const MODEL = 'board';
const SHARDS = 2;

interface ApiQueue {
  name: string;
  displayName?: string;
  readOnlyMode: boolean;
  allowRetries: boolean;
  counts: Record<string, number>;
  jobs: Array<{ id: string; name: string; data: { items: Array<{ id: string; input: unknown }> } }>;
}

let redis: TestRedis;
let worker: SpawnedProcess | undefined;
let board: SpawnedProcess | undefined;
let client: InferenceClient<{ x: number; v: number[] }, unknown> | undefined;
let url = '';

beforeAll(async () => {
  redis = await startTestRedis();
  worker = await startWorkerProcess({ redisUrl: redis.url, model: MODEL, module: 'builtin:noop', prefix: redis.prefix, args: ['--queue-shards', String(SHARDS)] });
  client = new InferenceClient({ redis: redis.url, model: MODEL, prefix: redis.prefix, queueShards: SHARDS, keepJobs: { completed: 50 } });
  board = spawnNode(SERVER, [], { REDIS_URL: redis.url, INFERQ_MODELS: MODEL, INFERQ_PREFIX: redis.prefix, PORT: '0' });
  url = (await board.waitForLine(/^BOARD /)).slice('BOARD '.length);
});

afterAll(async () => {
  await client?.close();
  await board?.stop();
  await worker?.stop();
  await redis?.cleanup();
});

async function api<T>(path: string, method = 'GET', body: unknown = {}): Promise<{ status: number; body: T }> {
  const res = await fetch(`${url}${path}`, { method, headers: { 'content-type': 'application/json' }, ...(method === 'GET' ? {} : { body: JSON.stringify(body) }) });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

const queueNames = () => shardKeys(MODEL, redis.prefix, SHARDS).map((k) => `${k.queuePrefix}:${k.queueName}`);

async function completedCounts(): Promise<number[]> {
  const conn = redis.connect();
  return Promise.all(
    shardKeys(MODEL, redis.prefix, SHARDS).map(async (k) => {
      const q = new Queue(k.queueName, { connection: conn, prefix: k.queuePrefix });
      try {
        return (await q.getJobCounts('completed')).completed ?? 0;
      } finally {
        await q.close();
      }
    }),
  );
}

describe('bull-board over inferq queue shards (read-only)', () => {
  it('lists every shard, shows completed envelopes with inputs as values, and refuses changes', async () => {
    // 40 distinct inputs: spread over both shards by their cache keys; inferBatch sends them in a few envelopes.
    const inputs = Array.from({ length: 40 }, (_, i) => ({ x: i, v: [i / 2, i / 4] }));
    const results = await client!.inferBatch(inputs);
    expect(results.map((r) => r.output)).toEqual(inputs);
    const counts = await completedCounts();
    expect(counts.every((n) => n >= 1), `completed jobs per shard: ${counts.join(', ')}`).toBe(true);

    const list = await api<{ queues: ApiQueue[] }>('/api/queues');
    expect(list.status).toBe(200);
    expect(list.body.queues.map((q) => q.name).sort()).toEqual(queueNames().sort());
    for (const q of list.body.queues) {
      expect(q.readOnlyMode, q.name).toBe(true);
      expect(q.allowRetries, q.name).toBe(false);
      expect(q.displayName).toMatch(new RegExp(`^${MODEL} shard [01]$`));
    }
    expect(list.body.queues.reduce((n, q) => n + (q.counts.completed ?? 0), 0)).toBe(counts.reduce((a, b) => a + b, 0));

    const name = queueNames()[0]!;
    const page = await api<{ queues: ApiQueue[] }>(`/api/queues?activeQueue=${encodeURIComponent(name)}&status=completed&page=1&jobsPerPage=50`);
    const active = page.body.queues.find((q) => q.name === name)!;
    expect(active.jobs.length).toBe(counts[0]);
    const job = active.jobs[0]!;
    expect(job.name).toMatch(/^infer \(\d+ items?\)$/);
    // Inputs shown as the JSON values the client sent, not as strings of JSON.
    for (const item of job.data.items) expect(inputs).toContainEqual(item.input);

    const q = encodeURIComponent(name);
    const refusals = await Promise.all([
      api(`/api/queues/${q}/retry/completed`, 'PUT'),
      api(`/api/queues/${q}/clean/completed`, 'PUT'),
      api(`/api/queues/${q}/${job.id}/retry`, 'PUT'),
      api(`/api/queues/${q}/${job.id}/clean`, 'PUT'),
      // A well-formed edit (a malformed one is refused earlier, 400, for its body).
      api(`/api/queues/${q}/${job.id}/update-data`, 'PATCH', { jobData: { ...job.data, items: [] } }),
      api(`/api/queues/${q}/empty`, 'PUT'),
      api(`/api/queues/${q}/pause`, 'PUT'),
    ]);
    expect(refusals.map((r) => r.status)).toEqual(refusals.map(() => 405));
    // "Pause all" answers 200 but skips read-only queues.
    expect((await api('/api/queues/pause', 'PUT')).status).toBe(200);
    const after = await api<{ queues: Array<ApiQueue & { isPaused: boolean }> }>('/api/queues');
    expect(after.body.queues.map((x) => x.isPaused)).toEqual(after.body.queues.map(() => false));
    expect(await completedCounts()).toEqual(counts);

    // The worker still serves: nothing the board did stopped the queue.
    const again = await client!.infer({ x: 1000, v: [] }, { timeoutMs: 10_000 });
    expect(again.output).toEqual({ x: 1000, v: [] });
  });
});

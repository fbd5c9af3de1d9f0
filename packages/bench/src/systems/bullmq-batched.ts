/**
 * Baseline 3, "BullMQ + batching": what a capable team builds with open-source
 * BullMQ alone when it knows its model wants batches.
 *
 * - client: one job per request, but the requests of one tick go out in ONE
 *   `queue.addBulk` (one round trip, like inferq's client and the floor);
 *   results come from ONE `QueueEvents` listener per process ('completed' /
 *   'failed', with the return value in the event) resolving a map by job id,
 *   instead of `waitUntilFinished` per job (which adds a listener and a state
 *   check per request). Job ids are chosen by the client (`<client>-<pid>-<n>`)
 *   so a waiter is registered before its job exists: no event can come first.
 *   Jobs are `removeOnComplete: true` (safe here: nothing reads the job after
 *   its event); failed ones kept (bounded).
 * - worker: a BullMQ `Worker` with concurrency `maxBatchSize x numWorkers`
 *   whose processors each `submit` their job's input to one in-process
 *   `RequestBatcher` (@inferq/core's, the batcher inferq's worker uses), which
 *   calls the model once per batch: up to `maxBatchSize` items, `numWorkers`
 *   batches in flight, `batchTimeoutMs`, policy 'eager' (inferq's default).
 *   A batch can hold no more jobs than the worker's concurrency: BullMQ hands
 *   a processor one job at a time, and a job stays active until its batch is
 *   answered, so each batch is followed by a refill of fetches.
 * - the batch counters the bench reads (avg batch) are two HINCRBY per batch.
 *
 * Every client process receives every queue event (QueueEvents is a stream
 * reader), as with plain BullMQ: that is how BullMQ reports results.
 */
import { Redis } from 'ioredis';
import type { ClientConfig, ScenarioSettings, WorkerConfig } from '../settings.js';
import { loadBenchModel } from './bench-model.js';
import { CHILD_SCRIPT, SYSTEM_LABELS } from './registry.js';
import type { SystemDefinition, Transport } from './system.js';

const JOB_NAME = 'infer';
const statsKey = (s: ScenarioSettings) => `${s.namespace}:bullmq-batched:stats`;

/** BullMQ's blocking readers (QueueEvents, Worker) require maxRetriesPerRequest: null. */
function connect(url: string, name: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, connectionName: name });
}

interface Pending {
  start: number;
  resolve(): void;
  reject(err: Error): void;
}

async function connectClient(cfg: ClientConfig): Promise<Transport> {
  const { Queue, QueueEvents } = await import('bullmq');
  const queue = new Queue(cfg.queueName, { connection: connect(cfg.redisUrl, 'bench:bullmq-batched-queue'), prefix: cfg.namespace });
  const events = new QueueEvents(cfg.queueName, { connection: connect(cfg.redisUrl, 'bench:bullmq-batched-events'), prefix: cfg.namespace });
  queue.on('error', (err) => console.error(`bullmq-batched client queue: ${err.message}`));
  events.on('error', (err) => console.error(`bullmq-batched client events: ${err.message}`));
  const pending = new Map<string, Pending>();
  events.on('completed', ({ jobId }) => {
    const p = pending.get(jobId);
    if (!p) return;
    pending.delete(jobId);
    p.resolve();
  });
  events.on('failed', ({ jobId, failedReason }) => {
    const p = pending.get(jobId);
    if (!p) return;
    pending.delete(jobId);
    p.reject(new Error(failedReason));
  });
  await queue.waitUntilReady();
  await events.waitUntilReady();

  const idPrefix = `c${cfg.clientIndex}-${process.pid}-`;
  let seq = 0;
  let outbox: Array<{ id: string; input: number[] }> = [];
  let flushScheduled = false;
  const flush = () => {
    flushScheduled = false;
    const batch = outbox;
    outbox = [];
    queue
      .addBulk(batch.map(({ id, input }) => ({ name: JOB_NAME, data: { input }, opts: { jobId: id, removeOnComplete: true, removeOnFail: { count: 1000 } } })))
      .catch((err: Error) => {
        for (const { id } of batch) {
          pending.get(id)?.reject(err);
          pending.delete(id);
        }
      });
  };

  // One sweep per second instead of a timer per request.
  setInterval(() => {
    const limit = performance.now() - cfg.requestTimeoutMs;
    for (const [id, p] of pending) {
      if (p.start < limit) {
        pending.delete(id);
        p.reject(new Error(`bullmq-batched request timed out after ${cfg.requestTimeoutMs} ms`));
      }
    }
  }, 1000).unref();

  return {
    send(input) {
      return new Promise<{ cached: boolean }>((resolve, reject) => {
        const id = `${idPrefix}${seq++}`;
        pending.set(id, { start: performance.now(), resolve: () => resolve({ cached: false }), reject });
        outbox.push({ id, input });
        if (!flushScheduled) {
          flushScheduled = true;
          setImmediate(flush);
        }
      });
    },
  };
}

async function runWorker(cfg: WorkerConfig): Promise<void> {
  const [{ Worker }, { RequestBatcher }] = await Promise.all([import('bullmq'), import('@inferq/core')]);
  const model = await loadBenchModel(cfg.model);
  const stats = connect(cfg.redisUrl, 'bench:bullmq-batched-stats');
  const batcher = new RequestBatcher<unknown, unknown>({
    name: 'bullmq-batched',
    process: (inputs) => model.run(inputs),
    maxBatchSize: cfg.maxBatchSize,
    batchTimeoutMs: cfg.batchTimeoutMs,
    numWorkers: cfg.numWorkers,
    batchPolicy: cfg.batchPolicy ?? 'eager',
    defaultTimeoutMs: cfg.requestTimeoutMs,
    onBatch: ({ size }) => {
      void stats.pipeline().hincrby(statsKey(cfg), 'batches', 1).hincrby(statsKey(cfg), 'items', size).exec().catch(() => undefined);
    },
  });
  batcher.start();
  const worker = new Worker<{ input: number[] }>(cfg.queueName, (job) => batcher.submit(job.data.input), {
    connection: connect(cfg.redisUrl, 'bench:bullmq-batched-worker'),
    prefix: cfg.namespace,
    concurrency: cfg.maxBatchSize * cfg.numWorkers,
  });
  worker.on('error', (err) => console.error(`bullmq-batched worker: ${err.message}`));
  await Promise.all([worker.waitUntilReady(), stats.ping()]);
  process.stdout.write(`READY bullmq-batched-worker-${cfg.workerIndex}\n`);
}

export const bullmqBatched: SystemDefinition = {
  id: 'bullmq-batched',
  label: SYSTEM_LABELS['bullmq-batched'],
  workerCommand: (s, index) => ({ script: CHILD_SCRIPT, args: [JSON.stringify({ ...s, role: 'worker', workerIndex: index } satisfies WorkerConfig)] }),
  async readCounters(redis, s) {
    const [batches, items] = await redis.hmget(statsKey(s), 'batches', 'items');
    return { batches: Number(batches ?? 0), items: Number(items ?? 0) };
  },
  connectClient,
  runWorker,
};

/**
 * Baseline 1, "plain BullMQ": what a user glues together from BullMQ alone.
 *
 * - client: `queue.add(name, { input })`, then `job.waitUntilFinished(queueEvents)`
 *   per request (BullMQ's documented way to wait for a result; every client
 *   process receives every queue event through its QueueEvents stream reader);
 * - worker: a BullMQ `Worker` with concurrency `maxBatchSize x numWorkers`
 *   (32 by default: it holds as many requests as one inferq worker process
 *   batches at once), calling the model on a batch of ONE per job;
 * - jobs `removeOnComplete` (the last 1000 kept, see KEEP_COMPLETED), failed ones kept (bounded).
 *
 * Deliberately no tuning beyond what BullMQ's docs show: it is the baseline
 * inferq must beat, not a straw man (no artificial delays, default options).
 */
import { Redis } from 'ioredis';
import type { ClientConfig, WorkerConfig } from '../settings.js';
import { loadBenchModel } from './bench-model.js';
import { CHILD_SCRIPT, SYSTEM_LABELS } from './registry.js';
import type { SystemDefinition, Transport } from './system.js';

const JOB_NAME = 'infer';
/**
 * `removeOnComplete: true` races `waitUntilFinished`: when the job completes
 * and is deleted before the waiter's own state check (its QueueEvents reader
 * lags behind under load), BullMQ rejects with "Missing key for job ...
 * isFinished" (seen here: ~1 % of requests). Keeping the last 1000 completed
 * jobs is what BullMQ's docs suggest and what a user ends up doing.
 */
const KEEP_COMPLETED = { count: 1000 };

/** BullMQ's blocking readers (QueueEvents, Worker) require maxRetriesPerRequest: null. */
function connect(url: string, name: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, connectionName: name });
}

// bullmq is imported where it is used: the parent process only needs this module's command lines.
async function connectClient(cfg: ClientConfig): Promise<Transport> {
  const { Queue, QueueEvents } = await import('bullmq');
  const queue = new Queue(cfg.queueName, { connection: connect(cfg.redisUrl, 'bench:bullmq-queue'), prefix: cfg.namespace });
  const events = new QueueEvents(cfg.queueName, { connection: connect(cfg.redisUrl, 'bench:bullmq-events'), prefix: cfg.namespace });
  // waitUntilFinished adds a 'closing' listener on the queue per waiting job:
  // with 128 in flight Node would warn about a leak that is not one.
  queue.setMaxListeners((cfg.load.kind === 'closed' ? cfg.load.inFlight : 1000) + 16);
  queue.on('error', (err) => console.error(`bullmq client queue: ${err.message}`));
  events.on('error', (err) => console.error(`bullmq client events: ${err.message}`));
  await queue.waitUntilReady();
  await events.waitUntilReady();
  return {
    async send(input) {
      const job = await queue.add(JOB_NAME, { input }, { removeOnComplete: KEEP_COMPLETED, removeOnFail: { count: 1000 } });
      await job.waitUntilFinished(events, cfg.requestTimeoutMs);
      return { cached: false };
    },
  };
}

async function runWorker(cfg: WorkerConfig): Promise<void> {
  const { Worker } = await import('bullmq');
  const model = await loadBenchModel(cfg.model);
  const worker = new Worker<{ input: number[] }>(
    cfg.queueName,
    async (job) => {
      const [output] = await model.run([job.data.input]);
      if (output instanceof Error) throw output;
      return output;
    },
    {
      connection: connect(cfg.redisUrl, 'bench:bullmq-worker'),
      prefix: cfg.namespace,
      concurrency: cfg.maxBatchSize * cfg.numWorkers,
    },
  );
  worker.on('error', (err) => console.error(`bullmq worker: ${err.message}`));
  await worker.waitUntilReady();
  process.stdout.write(`READY bullmq-worker-${cfg.workerIndex}\n`);
}

export const bullmqPlain: SystemDefinition = {
  id: 'bullmq',
  label: SYSTEM_LABELS.bullmq,
  workerCommand: (s, index) => ({ script: CHILD_SCRIPT, args: [JSON.stringify({ ...s, role: 'worker', workerIndex: index } satisfies WorkerConfig)] }),
  // One job per request, one model call per job: the average batch is 1 by construction.
  readCounters: async () => undefined,
  connectClient,
  runWorker,
};

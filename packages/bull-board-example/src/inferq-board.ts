/**
 * bull-board over inferq's queues, read-only: one BullMQAdapter per queue
 * shard of each model (a model with `queueShards` n is n BullMQ queues, see
 * `shardKeys()` in @inferq/core/protocol), each with `readOnlyMode: true`.
 *
 * Read-only because the board's buttons are wrong for inferq jobs: a job is
 * an envelope of many requests whose callers wait on their own deadlines,
 * flights and queue places. "Retry" re-runs an envelope whose callers were
 * answered (or gave up) long ago; "edit" rewrites inputs under cache keys
 * computed from the old ones; "clean" and "empty" drop requests whose callers
 * then wait for their timeout. inferq retries and fails jobs itself.
 *
 * An envelope carries each input as a string of JSON, or a flat number
 * array in compact form, `f64` (base64 of its float64 values; see RequestItem
 * in envelope.ts): the `data` formatter shows either as the JSON value it
 * stands for, so the board shows neither escaped strings nor base64. Only
 * the display changes; Redis holds what the client wrote.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { DEFAULT_PREFIX } from '@inferq/core';
import { decodeF64, readShardCount, shardKeys } from '@inferq/core/protocol';

export interface BoardModel {
  /** Model (queue) name, as given to its clients and workers. */
  model: string;
  /** Key prefix of the model's clients and workers. Default 'inferq'. */
  prefix?: string;
  /** Its queue shards; default: the count its clients and workers recorded in Redis. */
  queueShards?: number;
}

export interface InferqBoardOptions {
  /**
   * A Redis connection the board's queues share (never a blocking one: the
   * board only reads). The board does not close it.
   */
  connection: Redis;
  models: readonly BoardModel[];
  /** Where the router is mounted, e.g. '/admin/queues'. */
  basePath: string;
}

export interface InferqBoard {
  /** An express router: `app.use(basePath, board.router)`. */
  router: ReturnType<ExpressAdapter['getRouter']>;
  /** The board's queues, shard 0 of each model first: one per queue shard. */
  queues: readonly Queue[];
  /** Closes the queues (not the connection). */
  close(): Promise<void>;
}

/** The BullMQ queue of each shard of each model, named as inferq names them. */
export async function inferqQueues(connection: Redis, models: readonly BoardModel[]): Promise<Queue[]> {
  const queues: Queue[] = [];
  for (const m of models) {
    const prefix = m.prefix ?? DEFAULT_PREFIX;
    const shards = m.queueShards ?? (await readShardCount(connection, m.model, prefix));
    for (const keys of shardKeys(m.model, prefix, shards)) {
      queues.push(new Queue(keys.queueName, { connection, prefix: keys.queuePrefix }));
    }
  }
  return queues;
}

/**
 * An envelope's data with each input shown as the JSON value its string holds;
 * a compact input as its numbers, its item marked `"f64": "(compact, N numbers)"`.
 */
export function envelopeForDisplay(data: unknown): unknown {
  if (typeof data !== 'object' || data === null || !Array.isArray((data as { items?: unknown }).items)) return data;
  const env = data as { items: unknown[] };
  return {
    ...env,
    items: env.items.map((item) => {
      if (typeof item === 'object' && item !== null && typeof (item as { f64?: unknown }).f64 === 'string') {
        const it = item as { f64: string };
        const numbers = decodeF64(it.f64);
        // Not decodable (a hand-made job, refused by workers too): shown as it is.
        return typeof numbers === 'string' ? it : { ...it, f64: `(compact, ${numbers.length} numbers)`, input: Array.from(numbers) };
      }
      if (typeof item !== 'object' || item === null || typeof (item as { input?: unknown }).input !== 'string') return item;
      const it = item as { input: string };
      try {
        return { ...it, input: JSON.parse(it.input) as unknown };
      } catch {
        return it; // not JSON after all (a hand-made job): shown as it is
      }
    }),
  };
}

/**
 * A read-only adapter for one queue shard, with inputs shown as values and the
 * item count in the name. Its name on the board (and in the board's URLs) is
 * the shard's key root, `<prefix>:{<hash tag>}`: unique across prefixes.
 */
export function readOnlyAdapter(queue: Queue, displayName: string): BullMQAdapter {
  const adapter = new BullMQAdapter(queue, {
    readOnlyMode: true,
    allowRetries: false,
    prefix: `${queue.opts.prefix ?? DEFAULT_PREFIX}:`,
    displayName,
    description: 'inferq queue shard (read-only)',
  });
  adapter.setFormatter('data', envelopeForDisplay);
  adapter.setFormatter('name', (job: { name?: string; data?: { items?: unknown[] } }) => {
    const n = Array.isArray(job.data?.items) ? job.data.items.length : undefined;
    return n === undefined ? (job.name ?? '') : `${job.name ?? 'infer'} (${n} item${n === 1 ? '' : 's'})`;
  });
  return adapter;
}

/** bull-board for the given models, every queue shard read-only. Mount `router` at `basePath`. */
export async function createInferqBoard(o: InferqBoardOptions): Promise<InferqBoard> {
  const queues = await inferqQueues(o.connection, o.models);
  const adapters = queues.map((q) => {
    // `{model}` or `{model~s~salt}`: the hash tag names the model and its shard.
    const tag = q.name.slice(1, -1);
    const [model, shard] = tag.split('~');
    return readOnlyAdapter(q, shard === undefined ? `${model}` : `${model} shard ${shard}`);
  });
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(o.basePath);
  createBullBoard({ queues: adapters, serverAdapter });
  return {
    router: serverAdapter.getRouter(),
    queues,
    close: async () => {
      await Promise.all(queues.map((q) => q.close()));
    },
  };
}

/**
 * The bound on a model's queue (`maxQueueLength`): a count in Redis of the
 * requests enqueued and not yet answered, all clients together. A client
 * reserves room before it enqueues (what does not fit is refused with
 * INFERQ_QUEUE_FULL and never written); a worker gives room back when it
 * settles the requests (only those that were counted: the envelope marks
 * them); a worker repairs the count when BullMQ holds no job at all (jobs
 * removed or lost are never answered, so never given back).
 */
import type { ChainableCommander } from 'ioredis';
import type { RedisClient } from '../redis-connection.js';
import { callScript, pipelineScript } from '../lua-scripts.js';
import type { ModelKeys } from './keys.js';

/** Reserves room for up to `n` requests; resolves with how many fit, and the length before. */
export async function reserveQueue(redis: RedisClient, keys: ModelKeys, n: number, maxQueueLength: number): Promise<{ accepted: number; length: number }> {
  const [accepted, length] = (await callScript(redis, 'queue-reserve', [keys.queued], [String(n), String(maxQueueLength)])) as [number, number];
  return { accepted: Number(accepted), length: Number(length) };
}

/** Gives back room for `n` requests (answered, or never enqueued). */
export function releaseQueue(redis: RedisClient, keys: ModelKeys, n: number): Promise<unknown> {
  return callScript(redis, 'queue-release', [keys.queued], [String(n)]);
}

/** The same, queued on a pipeline (a worker's settle round trip). */
export function appendQueueRelease(pipeline: ChainableCommander, keys: ModelKeys, n: number): void {
  pipelineScript(pipeline, 'queue-release', [keys.queued], [String(n)]);
}

/** Resets the count when BullMQ holds no waiting, running, delayed or paused job; resolves with the count dropped, or -1. */
export async function reconcileQueue(redis: RedisClient, keys: ModelKeys): Promise<number> {
  const q = keys.queue;
  return Number(await callScript(redis, 'queue-reconcile', [keys.queued, q('wait'), q('active'), q('delayed'), q('prioritized'), q('paused')], []));
}

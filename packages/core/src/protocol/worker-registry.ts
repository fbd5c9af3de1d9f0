/**
 * The registry of a model's live workers: one sorted set per model
 * (`inferq:{m}:workers`, on the model's hash tag like the shard count),
 * worker id -> expiry on Redis time. Each running worker beats every
 * WORKER_BEAT_MS, which lists it for WORKER_BEAT_TTL_MS; a worker that
 * stops removes itself at once, a killed one drops out when its beat
 * expires. One key, not a key per worker: listing is one command in one
 * slot (no SCAN over every master of a cluster), and `inferq set-shards`
 * can check it and set the count in one script (shards-set-2.lua).
 */
import { callScript } from '../lua-scripts.js';
import type { RedisClient } from '../redis-connection.js';
import { DEFAULT_PREFIX, modelKeys } from './keys.js';

/** How often a running worker renews its heartbeat. */
export const WORKER_BEAT_MS = 1000;
/** How long one beat lists a worker: a few missed beats (a slow Redis, a long GC pause) do not drop it. */
export const WORKER_BEAT_TTL_MS = 5000;

/** Lists `workerId` as alive for `ttlMs`; resolves with the number of live workers. */
export async function beatWorker(redis: RedisClient, workersKey: string, workerId: string, ttlMs: number = WORKER_BEAT_TTL_MS): Promise<number> {
  return Number(await callScript(redis, 'worker-beat', [workersKey], [workerId, String(ttlMs)]));
}

/** Removes `workerId` from the registry (a worker that stopped). */
export async function forgetWorker(redis: RedisClient, workersKey: string, workerId: string): Promise<void> {
  await redis.zrem(workersKey, workerId);
}

/** The ids of the model's live workers (each beat within WORKER_BEAT_TTL_MS), by expiry. */
export async function liveWorkers(redis: RedisClient, model: string, prefix: string = DEFAULT_PREFIX): Promise<string[]> {
  return (await callScript(redis, 'worker-list', [modelKeys(model, prefix).workers], [])) as string[];
}

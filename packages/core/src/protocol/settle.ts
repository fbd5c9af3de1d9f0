/**
 * Settling requests (script `settle-var.lua`): cache writes, each outcome to
 * its client's inbox and to the waiters of the flight it owns, flights
 * closed, each envelope item at most once per job — queued on a pipeline, so
 * a worker can add the batch's stats to the same round trip. Each client's
 * inbox key is passed once, and its results arrive as one list element.
 *
 * Used by a worker for every batch, by a worker for a job that failed for
 * good, and by a client for flights it owns but cannot have computed
 * (`releaseFlights`).
 */
import type { ChainableCommander, Redis } from 'ioredis';
import { OPTIMIZATION_DEFAULTS } from '../config.js';
import { pipelineScript } from '../lua-scripts.js';
import type { ModelKeys } from './keys.js';

export interface SettleItem {
  requestId: string;
  /** Client whose inbox gets the outcome. */
  client: string;
  /** Cache key of the flight this item owns: its waiters are served and the flight closed. */
  cacheKey?: string;
  /** The job and envelope index of the item: it is settled at most once per job. */
  job?: { id: string; index: number };
  /** Outcome payload (JSON text) for the item's callers. */
  payload: string;
  /** Output JSON to write to the cache under `cacheKey`; absent = write nothing. */
  cacheValue?: string;
}

export interface SettleOptions {
  /** Cache capacity (cacheMaxSize). */
  maxSize: number;
  /** Cache capacity in bytes (cacheMaxBytes); an output larger than this alone is not cached. */
  maxBytes: number;
  /** TTL of written cache entries in ms; 0 = none. */
  cacheTtlMs: number;
  /** TTL set on each inbox pushed to, in ms. */
  inboxTtlMs: number;
  /** TTL of the jobs' done bitmaps in ms: longer than a job can be re-run. */
  doneTtlMs: number;
}

/** Items per script call: bounds how long one call holds Redis. */
const CHUNK = 256;

export function appendSettle(pipeline: ChainableCommander, keys: ModelKeys, items: readonly SettleItem[], o: SettleOptions): void {
  for (let start = 0; start < items.length; start += CHUNK) {
    const chunk = items.slice(start, start + CHUNK);
    const inboxIndex = new Map<string, number>();
    const doneIndex = new Map<string, number>();
    const inboxKeys: string[] = [];
    const flightKeys: string[] = [];
    const doneKeys: string[] = [];
    const itemArgs: string[] = [];
    for (const it of chunk) {
      let j = inboxIndex.get(it.client);
      if (j === undefined) {
        inboxKeys.push(keys.inbox(it.client));
        j = inboxKeys.length;
        inboxIndex.set(it.client, j);
      }
      let f = 0;
      if (it.cacheKey !== undefined) {
        flightKeys.push(keys.flight(it.cacheKey));
        f = flightKeys.length;
      }
      let d = 0;
      if (it.job !== undefined) {
        d = doneIndex.get(it.job.id) ?? 0;
        if (d === 0) {
          doneKeys.push(keys.jobDone(it.job.id));
          d = doneKeys.length;
          doneIndex.set(it.job.id, d);
        }
      }
      const cacheEntry = it.cacheKey !== undefined && it.cacheValue !== undefined ? `${it.cacheKey} ${it.cacheValue}` : '';
      itemArgs.push(String(j), it.requestId, String(f), String(d), String(it.job?.index ?? 0), it.payload, cacheEntry);
    }
    pipelineScript(
      pipeline,
      'settle',
      [keys.cacheLru, keys.cacheVal, keys.cacheExp, keys.cacheBytes, ...inboxKeys, ...flightKeys, ...doneKeys],
      [
        String(o.maxSize),
        String(o.cacheTtlMs),
        String(o.inboxTtlMs),
        keys.inboxPrefix,
        String(inboxKeys.length),
        String(flightKeys.length),
        String(o.doneTtlMs),
        String(o.maxBytes),
        ...itemArgs,
      ],
    );
  }
}

/** Runs a settle pipeline; rejects with the first command error. */
export async function execSettle(redis: Redis, keys: ModelKeys, items: readonly SettleItem[], o: SettleOptions): Promise<void> {
  const pipeline = redis.pipeline();
  appendSettle(pipeline, keys, items, o);
  const results = await pipeline.exec();
  const failed = results?.find(([err]) => err);
  if (!results || failed) throw failed?.[0] ?? new Error('pipeline was not executed');
}

/**
 * Gives up flights a client owns but could not have computed (its enqueue
 * failed, or its job failed for good): their waiters get `payload` now, and
 * the flights close, so the next identical request computes instead of
 * waiting for a job that does not exist.
 */
export function releaseFlights(
  redis: Redis,
  keys: ModelKeys,
  client: string,
  flights: ReadonlyArray<{ id: string; key: string }>,
  payload: string,
): Promise<void> {
  const items: SettleItem[] = flights.map((f) => ({ requestId: f.id, client, cacheKey: f.key, payload }));
  // Nothing is cached here (no item has a cacheValue): the cache bounds are only well-formed.
  return execSettle(redis, keys, items, { maxSize: 1, maxBytes: OPTIMIZATION_DEFAULTS.cacheMaxBytes, cacheTtlMs: 0, inboxTtlMs: 60_000, doneTtlMs: 60_000 });
}

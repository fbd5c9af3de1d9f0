/**
 * Worker side of a finished batch (script `settle-var.lua`): cache writes,
 * each result to its client's inbox and to the waiters of its single-flight
 * key, flights cleared — queued on a pipeline so the caller can add the
 * batch's stats to the same round trip.
 */
import type { ChainableCommander } from 'ioredis';
import { pipelineScript } from './lua-scripts.js';
import type { ModelKeys } from './redis-keys.js';

export interface SettleItem {
  requestId: string;
  /** Client whose inbox gets the result. */
  client: string;
  /** The request's cache key, when it has one. */
  cacheKey?: string;
  /** The request owns a single-flight marker (serve its waiters, clear it). */
  flight: boolean;
  /** Result payload (JSON text) for the item's callers. */
  payload: string;
  /** Output JSON to write to the cache under `cacheKey`; absent = write nothing. */
  cacheValue?: string;
}

export interface SettleOptions {
  /** Cache capacity (cacheMaxSize). */
  maxSize: number;
  /** TTL of written cache entries in ms; 0 = none. */
  cacheTtlMs: number;
  /** TTL set on each inbox pushed to, in ms. */
  inboxTtlMs: number;
}

/** Items per script call: bounds how long one call holds Redis. */
const CHUNK = 128;

export function appendSettle(pipeline: ChainableCommander, keys: ModelKeys, items: readonly SettleItem[], o: SettleOptions): void {
  for (let start = 0; start < items.length; start += CHUNK) {
    const redisKeys: string[] = [keys.cacheLru, keys.cacheVal, keys.cacheExp];
    const args: string[] = [String(o.maxSize), String(o.cacheTtlMs), String(o.inboxTtlMs), keys.inboxPrefix];
    for (const it of items.slice(start, start + CHUNK)) {
      const inbox = keys.inbox(it.client);
      const flightKey = it.flight && it.cacheKey !== undefined;
      // Items without a flight still fill their two key slots (never touched by the script).
      redisKeys.push(inbox, flightKey ? keys.flight(it.cacheKey as string) : inbox, flightKey ? keys.flightWaiters(it.cacheKey as string) : inbox);
      args.push(it.requestId, it.cacheKey ?? '', flightKey ? '1' : '0', it.payload, it.cacheValue ?? '');
    }
    pipelineScript(pipeline, 'settle', redisKeys, args);
  }
}

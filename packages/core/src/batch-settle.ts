/**
 * Worker side of a finished batch (script `settle-var.lua`): cache writes,
 * each result to its client's inbox and to the waiters of its single-flight
 * key, flights cleared — queued on a pipeline so the caller can add the
 * batch's stats to the same round trip. Each client's inbox key is passed
 * once, and its results arrive as one list element (see wire-format.ts).
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
const CHUNK = 256;

export function appendSettle(pipeline: ChainableCommander, keys: ModelKeys, items: readonly SettleItem[], o: SettleOptions): void {
  for (let start = 0; start < items.length; start += CHUNK) {
    const chunk = items.slice(start, start + CHUNK);
    const inboxIndex = new Map<string, number>();
    const inboxKeys: string[] = [];
    const flightKeys: string[] = [];
    const itemArgs: string[] = [];
    for (const it of chunk) {
      let j = inboxIndex.get(it.client);
      if (j === undefined) {
        inboxKeys.push(keys.inbox(it.client));
        j = inboxKeys.length;
        inboxIndex.set(it.client, j);
      }
      let f = 0;
      if (it.flight && it.cacheKey !== undefined) {
        flightKeys.push(keys.flight(it.cacheKey), keys.flightWaiters(it.cacheKey));
        f = flightKeys.length / 2;
      }
      const cacheEntry = it.cacheKey !== undefined && it.cacheValue !== undefined ? `${it.cacheKey} ${it.cacheValue}` : '';
      itemArgs.push(String(j), it.requestId, String(f), it.payload, cacheEntry);
    }
    pipelineScript(
      pipeline,
      'settle',
      [keys.cacheLru, keys.cacheVal, keys.cacheExp, ...inboxKeys, ...flightKeys],
      [String(o.maxSize), String(o.cacheTtlMs), String(o.inboxTtlMs), keys.inboxPrefix, String(inboxKeys.length), ...itemArgs],
    );
  }
}

/**
 * Worker side, before a batch runs (script `batch-open-var.lua`): for each
 * cached item, a late cache hit, or the latest deadline of everyone waiting
 * on the flight the item owns; and Redis time, to compare deadlines on.
 */
import type { RedisClient } from '../redis-connection.js';
import { callScript } from '../lua-scripts.js';
import type { ModelKeys } from './keys.js';

export type OpenedItem =
  /** Cached meanwhile: the output as stored (JSON text). */
  | { hit: true; valueJson: string }
  /** Not cached: `deadline` is the flight's latest deadline (Redis epoch ms), 0 when the item owns no flight anymore. */
  | { hit: false; deadline: number };

export interface OpenedBatch {
  /** Redis time (epoch ms) when the script ran. */
  now: number;
  items: OpenedItem[];
}

/** Items per script call: bounds how long one call holds Redis. */
const CHUNK = 256;

export async function openBatch(redis: RedisClient, keys: ModelKeys, items: ReadonlyArray<{ id: string; key: string }>): Promise<OpenedBatch> {
  const out: OpenedItem[] = [];
  let now = 0;
  for (let start = 0; start < items.length || start === 0; start += CHUNK) {
    const chunk = items.slice(start, start + CHUNK);
    const redisKeys: string[] = [keys.cacheLru, keys.cacheVal, keys.cacheExp, keys.cacheBytes];
    const args: string[] = [];
    for (const it of chunk) {
      redisKeys.push(keys.flight(it.key));
      args.push(it.key, it.id);
    }
    const reply = (await callScript(redis, 'batch-open', redisKeys, args)) as unknown[];
    now = Number(reply[0]);
    for (let i = 1; i < reply.length; i++) {
      const r = reply[i] as unknown[];
      out.push(Number(r[0]) === 1 ? { hit: true, valueJson: String(r[1]) } : { hit: false, deadline: Number(r[1]) });
    }
    if (items.length === 0) break;
  }
  return { now, items: out };
}

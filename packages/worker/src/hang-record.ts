/**
 * The hang record of a job's items: how many model calls past
 * `modelTimeoutMs` each item was in, on any worker. It lives in the job's
 * crash record hash (`crash:<job id>`, crash-isolation.ts), in fields
 * `h<envelope index>` next to crash isolation's `<index>` fields, with the
 * same TTL (that of the done bitmap, longer than a job can be re-run).
 *
 * Why in Redis: the next try of a hanging input may be on another worker
 * (its job is retried, or handed back by a worker that left because every
 * model slot was stuck), and that worker must know to run it alone, and when
 * to stop trying. Written only when a call times out: nothing on the
 * ordinary path.
 */
import type { ModelKeys, RedisClient } from '@inferq/core';
import type { WorkItem } from './batch-pipeline.js';

/** Field of an item's hang count in its job's crash record. */
export function hangField(index: number): string {
  return `h${index}`;
}

/**
 * Adds one hung call to each item's count; resolves with each item's count
 * after it (0 for an item whose write failed: it is then merely tried again).
 */
export async function recordHangs(redis: RedisClient, shards: readonly ModelKeys[], items: readonly WorkItem[], ttlMs: number): Promise<Map<WorkItem, number>> {
  const counts = new Map<WorkItem, number>();
  if (items.length === 0) return counts;
  const pipeline = redis.pipeline();
  for (const item of items) {
    const key = (shards[item.shard] as ModelKeys).jobCrashes(item.jobId);
    pipeline.hincrby(key, hangField(item.index), 1).pexpire(key, ttlMs);
  }
  const replies = (await pipeline.exec()) ?? [];
  items.forEach((item, k) => {
    const [err, n] = replies[2 * k] ?? [new Error('no reply'), 0];
    counts.set(item, err ? 0 : Number(n) || 0);
  });
  return counts;
}

/** Each item's hang count from its job's crash record (as read with HGETALL). */
export function hangsOf(record: Record<string, string>, item: WorkItem): number {
  return Number(record[hangField(item.index)] ?? 0) || 0;
}

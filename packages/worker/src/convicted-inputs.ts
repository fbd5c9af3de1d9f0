/**
 * Inputs convicted of crashing the worker process, remembered by the whole
 * fleet. Crash isolation (crash-isolation.ts) convicts an input within one
 * job: after maxCrashes deaths with it alone in the model. Without a memory
 * across jobs, the same input sent again in a new job would kill workers
 * 1 + maxCrashes more times before being convicted again. So a conviction
 * is also written to the model-wide `convicted` hash (cache key -> crashes;
 * the cache key names the model version and quantization, so a fixed model
 * deployed under a new version runs the input again), and every worker
 * answers a convicted input INFERQ_MODEL_CRASHED before it reaches a batch.
 *
 * Each worker keeps a copy in memory, read again every REFRESH_MS: the
 * check costs nothing per item while no input is convicted (the usual
 * case); once one is, an item without a cache key (a request with caching
 * off) is fingerprinted with the same SHA-256 the cache key uses. A
 * conviction lasts CONVICTION_TTL_MS after the latest one; `DEL` the key to
 * pardon every input at once.
 */
import { keyFromCanonicalInput, type Logger, type ModelIdentity, type RedisClient } from '@inferq/core';
import { itemInputJson } from '@inferq/core/protocol';
import type { WorkItem } from './batch-pipeline.js';

/** How often each worker reads the fleet's convictions again. */
export const REFRESH_MS = 2_000;
/** How long the convictions are kept after the latest one. */
export const CONVICTION_TTL_MS = 24 * 3600 * 1000;

export class ConvictedInputs {
  /** Cache key -> crashes. */
  private known = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;

  constructor(
    private readonly redis: RedisClient,
    private readonly key: string,
    private readonly identity: ModelIdentity,
    private readonly logger: Logger,
  ) {}

  /** Reads the convictions now, then every REFRESH_MS until stop(). */
  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), REFRESH_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The item's crashes when its input is convicted; undefined otherwise. */
  crashesOf(item: WorkItem): number | undefined {
    if (this.known.size === 0) return undefined;
    return this.known.get(this.fingerprint(item));
  }

  /** Records convictions for the whole fleet (and at once in this process). */
  async convict(items: ReadonlyArray<{ item: WorkItem; crashes: number }>): Promise<void> {
    if (items.length === 0) return;
    const fields: Array<string | number> = [];
    for (const { item, crashes } of items) {
      const fp = this.fingerprint(item);
      this.known.set(fp, crashes);
      fields.push(fp, crashes);
    }
    const replies = await this.redis.pipeline().hset(this.key, ...fields).pexpire(this.key, CONVICTION_TTL_MS).exec();
    const failed = replies?.find(([err]) => err);
    if (!replies || failed) throw failed?.[0] ?? new Error('recording the convicted inputs failed');
  }

  private fingerprint(item: WorkItem): string {
    return item.key ?? keyFromCanonicalInput(this.identity, itemInputJson(item.input));
  }

  private async refresh(): Promise<void> {
    try {
      const all = await this.redis.hgetall(this.key);
      const next = new Map<string, number>();
      for (const [fp, n] of Object.entries(all)) next.set(fp, Number(n) || 1);
      this.known = next;
      this.failures = 0;
    } catch (err) {
      // The last copy stays in use; a few misses only mean a convicted input may run (and be convicted) again.
      if (this.failures++ % 30 === 0) this.logger.warn({ err, key: this.key, failures: this.failures }, 'reading the convicted inputs failed; keeping the last copy');
    }
  }
}

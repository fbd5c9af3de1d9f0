/**
 * A worker that holds its fill of items (`maxHeldItems`), or of jobs (its
 * BullMQ concurrency), takes no new job until one ends: BullMQ fetches only
 * then, and by then the next batch has already formed from what it holds,
 * so a better job fetched at that moment waits a whole batch more. Under a
 * backlog of large envelopes (up to 256 items each) that is many batches, and
 * a `high` job queued meanwhile would wait for them although the batcher would
 * serve it first (priorities order what a worker holds, pending-queue.ts).
 *
 * The same holds within a class: a polite tenant's job ranks ahead of a
 * flooder's backlog (protocol/priority.ts), and would wait behind what the
 * worker already holds of that backlog.
 *
 * So after each batch, and every POLL_MS while it is full (so that such a
 * job is in hand before the running batch ends and goes into the next one,
 * not the one after), a full worker looks at the head of each shard's queue
 * (one ZRANGE: BullMQ's prioritized set, scored priority * 2^32 + counter)
 * and, when that job should pass the items it holds pending (a better class,
 * or in the same class a fair rank better by more than `rankMargin`: a
 * tenant's steady stream ranks each new job a little ahead of its older
 * ones, and fetching those early would only fill the one urgent place with
 * more of the same backlog), takes that
 * one job through BullMQ's public manual-fetch API (`Worker.getNextJob` +
 * `Worker.processJob`: lock renewal, completion and retries exactly as
 * BullMQ's own loop does them). Between the look and the take another worker
 * may take the job; the one taken instead is then an ordinary job held early.
 * What a worker holds stays bounded: at most MAX_IN_HAND such jobs per shard
 * at a time, past its limit.
 */
import type { Job, Worker } from 'bullmq';
import type { Logger, RedisClient } from '@inferq/core';
import { PRIORITIES, classOf } from '@inferq/core/protocol';

export interface UrgentFetchOptions<D, R> {
  cmd: RedisClient;
  /** This worker's BullMQ workers, one per shard. */
  workers: () => readonly Worker<D, R>[];
  /**
   * True when BullMQ will not fetch for `shard` now (the worker holds its fill
   * of items, or its BullMQ worker holds its concurrency of jobs) although the
   * worker may take jobs (running, not isolating a crash, model not stuck).
   */
  full: (shard: number) => boolean;
  /** How much better (in ranks) a job of the same class must rank to pass what is held (a batch: `maxBatchSize`). */
  rankMargin: number;
  /** The BullMQ priority of the items the batcher serves next (undefined: nothing pending). */
  nextPending: () => number | undefined;
  logger: Logger;
}

const SCORE_PRIORITY = 2 ** 32;
/** How often a full worker looks (one ZRANGE per shard; nothing while not full). */
const POLL_MS = 5;
/**
 * Jobs taken here per shard at a time: more than one, or a `high` trickle
 * finds the place still taken by the previous one (it ends a batch later).
 */
const MAX_IN_HAND = 4;

export class UrgentFetch<D, R> {
  private looking = false;
  private seq = 0;
  /** Jobs taken here and still being processed, per shard (BullMQ's own loop does not count them). */
  private readonly taken = new Map<number, Set<Promise<unknown>>>();

  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: UrgentFetchOptions<D, R>) {}

  /** Looks every POLL_MS while the worker is full (`check` returns at once otherwise). */
  start(): void {
    this.timer ??= setInterval(() => this.check(), POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Jobs of `shard` taken here and not finished. */
  inHand(shard: number): number {
    return this.taken.get(shard)?.size ?? 0;
  }

  /** After a batch: look once (never two looks at a time). */
  check(): void {
    if (this.looking) return;
    const shards = this.o.workers().length;
    let any = false;
    for (let shard = 0; shard < shards && !any; shard++) any = this.o.full(shard);
    if (!any) return;
    this.looking = true;
    void this.look()
      .catch((err: unknown) => this.o.logger.warn({ err }, 'looking for an urgent job failed; the next batch looks again'))
      .finally(() => {
        this.looking = false;
      });
  }

  /** Waits for the jobs taken here (a stopping worker finishes them before closing BullMQ). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.taken.values()].flatMap((s) => [...s]));
  }

  private async look(): Promise<void> {
    const next = this.o.nextPending();
    if (next === undefined) return; // everything held is in the model: jobs end soon and BullMQ fetches
    const workers = this.o.workers();
    for (let shard = 0; shard < workers.length; shard++) {
      const worker = workers[shard] as Worker<D, R>;
      if (this.inHand(shard) >= MAX_IN_HAND || !this.o.full(shard)) continue;
      const head = await this.o.cmd.zrange(worker.keys.prioritized as string, 0, 0, 'WITHSCORES');
      if (head.length < 2) continue;
      const priority = Math.floor(Number(head[1]) / SCORE_PRIORITY);
      if (!this.passes(priority, next) || !this.o.full(shard)) continue;
      const token = `${worker.id}:urgent:${this.seq++}`;
      const job = (await worker.getNextJob(token, { block: false })) as Job<D, R> | undefined;
      if (!job) continue;
      this.o.logger.debug({ shard, jobId: job.id, priority: job.priority, pendingPriority: next }, 'took an urgent job past the held-items limit');
      this.track(shard, worker.processJob(job, token, () => false));
    }
  }

  /** Whether a job of BullMQ priority `head` should pass held items whose best priority is `next`. */
  private passes(head: number, next: number): boolean {
    const a = PRIORITIES.indexOf(classOf(head));
    const b = PRIORITIES.indexOf(classOf(next));
    return a < b || (a === b && head + this.o.rankMargin < next);
  }

  private track(shard: number, p: Promise<unknown>): void {
    let set = this.taken.get(shard);
    if (!set) this.taken.set(shard, (set = new Set()));
    const tracked = p
      .catch((err: unknown) => this.o.logger.error({ err, shard }, 'processing an urgent job failed'))
      .finally(() => set.delete(tracked));
    set.add(tracked);
  }
}

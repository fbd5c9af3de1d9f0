/**
 * What a worker does for the model's queue besides serving it, once a
 * second (every worker: each step is idempotent, so two workers doing it
 * at once do it once):
 *
 * - gives back the queue places of clients that died between reserving and
 *   enqueuing (the ledger's leases: protocol/queue-room.ts), so they return
 *   within seconds even when no client is admitting anything;
 * - reads the operator's per-tenant caps on model slots (`inferq tenants set
 *   <t> --max-slots n`), which the batcher applies to each batch it forms;
 * - ages queued jobs (protocol/priority.ts): a job that has waited
 *   `priorityAgingMs` in the `normal` or `low` band moves to the front of the
 *   band above, through BullMQ's own changePriority. A job that started `low`
 *   reaches `high` after twice the period (it sits at the `normal` band's
 *   rank 0, which no fresh job takes). At most AGING_BUDGET jobs per band and
 *   shard move per tick: aging is a guaranteed minimum share for the band
 *   below (it is never starved), not a way for a deep backlog older than the
 *   period to move whole in front of the requests its class was meant to
 *   yield to (measured in `pnpm bench --only priority`: a `normal` trickle
 *   behind a deep `low` backlog, p50 2,487 ms with every aged job moved,
 *   112 ms with one per tick).
 */
import { Job, type Worker } from 'bullmq';
import type { Logger, ModelKeys, RedisClient } from '@inferq/core';
import { ENVELOPE_JOB_NAME, agedJobs, agedPriority, classOf, jobPriority, reserveRoom } from '@inferq/core/protocol';

const TICK_MS = 1000;
/** Jobs looked at per band per tick (a deeper band is covered over several ticks). */
const WINDOW = 500;
/** Jobs moved up per band, shard and tick: the minimum share of a band that waits. */
const AGING_BUDGET = 1;
/** The `normal` band's rank 0: where a job aged from `low` sits. */
const AGED_FROM_LOW = jobPriority('normal', 0);

export interface QueueUpkeepOptions {
  cmd: RedisClient;
  /** Model-wide keys (ledger, tenants). */
  keys: ModelKeys;
  /** This worker's BullMQ workers, one per queue shard. */
  workers: () => readonly Worker[];
  priorityAgingMs: number;
  logger: Logger;
}

export class QueueUpkeep {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Tenant -> most items in running batches (absent: no cap). */
  private slotCaps = new Map<string, number>();
  /** Per shard and band, where the next window starts. */
  private readonly offsets = new Map<string, number>();

  constructor(private readonly o: QueueUpkeepOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), TICK_MS);
    this.timer.unref();
    void this.tick();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A tenant's cap on this worker's model slots (0 = none): the batcher's `groupLimit`. */
  readonly slotCap = (tenant: string): number => this.slotCaps.get(tenant) ?? 0;

  /** One round; a round still running (a slow Redis) is not overlapped. */
  async tick(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await Promise.all([this.reclaim(), this.readSlotCaps(), this.age()]);
    } finally {
      this.running = false;
    }
  }

  private async reclaim(): Promise<void> {
    try {
      const r = await reserveRoom(this.o.cmd, this.o.keys, { client: '' });
      if (r.reclaimed > 0) this.o.logger.warn({ reclaimed: r.reclaimed }, 'gave back the queue places of clients that died before enqueuing');
    } catch (err) {
      this.o.logger.warn({ err }, 'reclaiming the queue places of dead clients failed');
    }
  }

  private async readSlotCaps(): Promise<void> {
    try {
      const all = await this.o.cmd.hgetall(this.o.keys.tenants);
      const caps = new Map<string, number>();
      for (const [field, value] of Object.entries(all)) {
        if (!field.endsWith('|maxSlots')) continue;
        const n = Number(value);
        if (Number.isInteger(n) && n > 0) caps.set(field.slice(0, -'|maxSlots'.length), n);
      }
      this.slotCaps = caps;
    } catch (err) {
      // The caps last read stay in force.
      this.o.logger.warn({ err }, "reading tenants' slot caps failed; keeping the last ones");
    }
  }

  /** Ages every shard's `normal` and `low` bands. */
  private async age(): Promise<void> {
    const cutoff = Date.now() - this.o.priorityAgingMs;
    await Promise.all(
      this.o.workers().map(async (worker, shard) => {
        try {
          for (const band of ['normal', 'low'] as const) await this.ageBand(worker, shard, band, cutoff);
        } catch (err) {
          this.o.logger.warn({ err, queue: worker.name }, 'aging queued jobs failed; retrying next tick');
        }
      }),
    );
  }

  private async ageBand(worker: Worker, shard: number, band: 'normal' | 'low', cutoff: number): Promise<void> {
    const slot = `${shard}/${band}`;
    const { jobs, nextOffset } = await agedJobs(this.o.cmd, {
      prioritizedKey: worker.keys.prioritized as string,
      jobKeyPrefix: worker.toKey(''),
      band,
      offset: this.offsets.get(slot) ?? 0,
      window: WINDOW,
      cutoff,
    });
    let moved = 0;
    for (const { id, priority } of jobs) {
      if (moved >= AGING_BUDGET) break;
      // A job aged from `low` waits a second period at the front of `normal` before `high`.
      if (priority === AGED_FROM_LOW && !(await this.waitedTwice(worker, id, cutoff))) continue;
      const to = agedPriority(priority);
      if (to === undefined || classOf(priority) !== band) continue;
      try {
        await new Job(worker, ENVELOPE_JOB_NAME, undefined, {}, id).changePriority({ priority: to });
        moved++;
      } catch (err) {
        // Taken and finished meanwhile (removed): nothing left to age.
        if (!(await this.o.cmd.exists(worker.toKey(id)))) continue;
        throw err;
      }
    }
    // Moved up to the budget: the next tick looks from the band's start again (what moved left it).
    this.offsets.set(slot, moved >= AGING_BUDGET ? 0 : nextOffset);
    if (moved > 0) this.o.logger.debug({ queue: worker.name, band, moved }, 'aged queued jobs up one priority class');
  }

  /** Whether a job aged from `low` has waited two aging periods. */
  private async waitedTwice(worker: Worker, id: string, cutoff: number): Promise<boolean> {
    const ts = Number(await this.o.cmd.hget(worker.toKey(id), 'timestamp'));
    return Number.isFinite(ts) && ts <= cutoff - this.o.priorityAgingMs;
  }
}

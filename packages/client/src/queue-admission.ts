/**
 * A client's side of the model's queue bound (protocol/queue-room.ts): the
 * operator's limits as last read, the reservation call, and what a refusal
 * says. The send path (send-path.ts) moves flights; this decides.
 *
 * - The limits (the model's bound, this tenant's cap and weight) are read at
 *   start and every tick, so an operator's change needs no restart.
 * - A "queue full" answer is trusted for a moment (FULL_TRUST_MS): under a
 *   flood, further requests are refused without a round trip, except as many
 *   as results arrived since (each answer frees a place, which those requests
 *   ask Redis for).
 * - Once this client reserved anything, every tick renews its lease on its
 *   places: a request whose callers gave up is no longer tracked, yet its
 *   place stays held until a worker answers its job.
 */
import { QueueFullError, type Logger, type ModelKeys, type RedisClient } from '@inferq/core';
import { fairRank, readLimits, reserveRoom, type RoomReservation } from '@inferq/core/protocol';
import type { ResolvedClientOptions } from './client-options.js';

/** Longest a client trusts a "queue full" answer before asking Redis again. */
const FULL_TRUST_MS = 20;

export interface QueueAdmissionOptions {
  client: string;
  opts: ResolvedClientOptions;
  /** Model-wide keys (the ledger, limits, tenants). */
  keys: ModelKeys;
  cmd: RedisClient;
  logger: Logger;
  /** This client's recent pace of answers per second (the refusal's `retryAfterMs` hint). */
  answeredPerSecond: () => number;
}

export class QueueAdmission {
  /** Set when the model's queue refused requests: refusals without a round trip until `until`, but for `room`. */
  private full: { until: number; max: number; retryAfterMs: number; details: Record<string, unknown>; room: number } | undefined;
  /** The operator's limits as last read: the model's bound and this tenant's cap (0 = none) and weight. */
  private limits = { maxQueueLength: 0, tenantCap: 0, weight: 1 };
  private known = false;
  private reservedAny = false;
  private readonly ranks = new TenantRanks();

  constructor(private readonly o: QueueAdmissionOptions) {}

  /** This tenant's weight (ranks of requests sent without the ledger are divided by it). */
  get weight(): number {
    return this.limits.weight;
  }

  /** True when flights must go through admission: the limits are not known yet, or the queue is bounded. */
  needed(): boolean {
    return !this.known || this.bounded();
  }

  /** The rank of a request (TenantRanks below). */
  rank(n: number, weight: number, idle: boolean): number {
    return this.ranks.rank(n, weight, idle);
  }

  /** Whether the model's queue is bounded for this client: the operator's bound, its own, or a cap on its tenant. */
  bounded(): boolean {
    return this.limits.maxQueueLength > 0 || this.limits.tenantCap > 0 || this.o.opts.config.maxQueueLength > 0;
  }

  /** Results arrived (`answers` of them): as many requests may ask Redis for the places they freed. */
  freed(answers: number): void {
    if (this.full) this.full.room += answers;
  }

  /** A refusal without a round trip while the queue was just found full; undefined: ask Redis. */
  fastRefusal(): QueueFullError | undefined {
    const full = this.full;
    if (!full) return undefined;
    const left = full.until - Date.now();
    if (left <= 0) {
      this.full = undefined;
      return undefined;
    }
    if (full.room > 0) {
      full.room--;
      return undefined;
    }
    return new QueueFullError(full.max, Math.max(1, full.retryAfterMs - (FULL_TRUST_MS - left)), { ...full.details, cached: true });
  }

  /** Asks the ledger for places for `requestIds`, in order. */
  async reserve(requestIds: readonly string[]): Promise<RoomReservation> {
    const r = await reserveRoom(this.o.cmd, this.o.keys, { client: this.o.client, tenant: this.o.opts.tenant, requestIds, clientBound: this.o.opts.config.maxQueueLength });
    this.reservedAny = true;
    return r;
  }

  /** The error for the refused requests of a reservation of `asked` ids; further requests are refused at once for a moment. */
  refusal(r: RoomReservation, asked: number, capped: boolean): QueueFullError {
    const limit = capped ? r.cap : r.bound;
    const excess = Math.max(1, (capped ? r.count : r.length) + asked - limit);
    // A hint from this client's own recent pace of answers; a second when it has none.
    const rate = this.o.answeredPerSecond();
    const retryAfterMs = Math.min(30_000, Math.max(50, rate > 0 ? Math.ceil((1000 * excess) / rate) : 1000));
    const details = { model: this.o.opts.model, queued: r.length, tenant: this.o.opts.tenant, share: r.share, tenantQueued: r.count, reason: capped ? 'cap' : 'full', ...(capped ? { cap: r.cap } : {}) };
    this.full = { until: Date.now() + Math.min(FULL_TRUST_MS, retryAfterMs), max: r.bound, retryAfterMs, details, room: 0 };
    return new QueueFullError(r.bound, retryAfterMs, details);
  }

  /** Reads the operator's limits (the model's bound, this tenant's cap and weight). */
  async refreshLimits(): Promise<void> {
    const tenant = this.o.opts.tenant;
    const [{ maxQueueLength }, [cap, weight]] = await Promise.all([readLimits(this.o.cmd, this.o.keys), this.o.cmd.hmget(this.o.keys.tenants, `${tenant}|maxQueued`, `${tenant}|weight`)]);
    const w = Number(weight ?? 1);
    const next = { maxQueueLength, tenantCap: Number.isInteger(Number(cap)) && Number(cap) > 0 ? Number(cap) : 0, weight: Number.isFinite(w) && w > 0 ? w : 1 };
    if (next.maxQueueLength !== this.limits.maxQueueLength || next.tenantCap !== this.limits.tenantCap || next.weight !== this.limits.weight) {
      this.o.logger.info({ ...next, tenant, known: this.known }, "the model's queue limits changed");
      this.full = undefined;
    }
    this.limits = next;
    this.known = true;
  }

  /** Every tick: the limits read again, and this client's lease on its places renewed. */
  tick(): void {
    this.refreshLimits().catch((err: unknown) => this.o.logger.warn({ err }, "reading the model's queue limits failed; retrying next tick"));
    if (!this.reservedAny) return;
    reserveRoom(this.o.cmd, this.o.keys, { client: this.o.client, tenant: this.o.opts.tenant }).catch((err: unknown) =>
      this.o.logger.warn({ err }, 'renewing the lease on queue places failed; retrying next tick'),
    );
  }
}

/**
 * The ranks a client gives its tenant's requests: the fair rank ceil(n /
 * weight) of a request that is the tenant's n-th waiting, but never below
 * the last one given while the tenant stayed busy. A count that goes down as
 * answers come back would otherwise rank newer requests ahead of the
 * tenant's own older ones (BullMQ breaks ties in arrival order, not a better
 * rank), and a flood's oldest requests waited behind its newest (measured in
 * the noisy-neighbour bench: the flooder's p99 1,383 ms, 13x its p50; 327 ms
 * with this). A tenant that goes idle (nothing waiting) starts again from 1.
 */
export class TenantRanks {
  private last = 0;

  rank(n: number, weight: number, idle: boolean): number {
    if (idle) this.last = 0;
    this.last = Math.max(this.last, fairRank(n, weight));
    return this.last;
  }
}

/**
 * The bound on a model's queue (`maxQueueLength`) as a ledger in Redis
 * (`room-reserve-4.lua`), shared fairly between tenants: one member per
 * request admitted and not yet answered, all clients and shards together
 * (model-wide keys), and each tenant's count.
 *
 * Invariants, each held by a script rather than by arithmetic in a caller:
 * - a request holds at most one place: admitting the same request id again
 *   (a resend, a retried call after a lost reply) reserves nothing more;
 * - a place is given back at most once: by the settle script that sets the
 *   request's done bit (so a re-run of its job gives nothing back twice), or
 *   by `releaseRoom` (idempotent: ZREM) for a request that will not be sent;
 *   a tenant's count goes down by exactly what left the ledger;
 * - a client that dies holding places loses them within a lease TTL: every
 *   reserve renews the caller's lease and reclaims the places of clients
 *   whose lease expired (request ids start with their client's id);
 * - the bound is the operator's (`limits` hash, set by workers): a client may
 *   only lower it for itself; a tenant under its share (by weight, among the
 *   tenants holding places) is never refused, a tenant at its cap always is.
 */
import type { RedisClient } from '../redis-connection.js';
import { callScript } from '../lua-scripts.js';
import type { ModelKeys } from './keys.js';

/** How long a client's places outlive its last reserve or renewal. */
export const ROOM_LEASE_MS = 3000;

/** The tenant of requests that name none. */
export const DEFAULT_TENANT = 'default';
/** A tenant is a short name: it appears in keys' fields, stats and metric labels. */
export const TENANT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** What admission decided for one request. */
export const Admission = { REFUSED_FULL: 0, ADMITTED: 1, REFUSED_CAP: 2 } as const;
export type AdmissionDecision = (typeof Admission)[keyof typeof Admission];

export interface RoomReservation {
  /** The ledger's length before this call. */
  length: number;
  /** Places of dead clients given back by this call. */
  reclaimed: number;
  /** The bound applied (the operator's, or the client's own when lower); 0 = none. */
  bound: number;
  /** The tenant's places before this call. */
  count: number;
  /** The tenant's fair share of the bound (rounded down); 0 with no bound. */
  share: number;
  /** The tenant's cap on places (0 = none). */
  cap: number;
  /** The tenant's weight (default 1): its requests' ranks in their class are divided by it (priority.ts). */
  weight: number;
  /** One decision per request id, in order. */
  decisions: AdmissionDecision[];
}

export interface ReserveRequest {
  /** The calling client ('' = none: only reclaim dead clients' places). */
  client: string;
  tenant?: string;
  /** Request ids to admit (none: only renew the lease and reclaim). */
  requestIds?: readonly string[];
  /** The client's own bound (0 or absent: the operator's alone); it can only lower the operator's. */
  clientBound?: number;
}

/** Admits what fits of `requestIds` (in order), renews the client's lease, and reclaims dead clients' places. */
export async function reserveRoom(redis: RedisClient, keys: ModelKeys, r: ReserveRequest): Promise<RoomReservation> {
  const reply = (await callScript(
    redis,
    'room-reserve',
    [keys.room, keys.roomLeases, keys.roomCounts, keys.roomClients],
    [r.client, String(r.clientBound ?? 0), String(ROOM_LEASE_MS), r.tenant ?? DEFAULT_TENANT, keys.limits, keys.tenants, ...(r.requestIds ?? [])],
  )) as number[];
  const n = (i: number) => Number(reply[i]);
  return { length: n(0), reclaimed: n(1), bound: n(2), count: n(3), share: n(4), cap: n(5), weight: n(6), decisions: reply.slice(7).map((x) => Number(x) as AdmissionDecision) };
}

/** Gives back the places of one tenant's requests (answered, or never to be sent); resolves with how many were held. */
export async function releaseRoom(redis: RedisClient, keys: Pick<ModelKeys, 'room' | 'roomCounts'>, tenant: string, requestIds: readonly string[]): Promise<number> {
  if (requestIds.length === 0) return 0;
  return Number(await callScript(redis, 'room-release', [keys.room, keys.roomCounts], [tenant, ...requestIds]));
}

/** The operator's limits of a model: `maxQueueLength` (0 = none). */
export async function readLimits(redis: RedisClient, keys: ModelKeys): Promise<{ maxQueueLength: number }> {
  const v = Number(await redis.hget(keys.limits, 'maxQueueLength'));
  return { maxQueueLength: Number.isInteger(v) && v > 0 ? v : 0 };
}

/** Sets the operator's bound (0 removes it): workers at start (their `maxQueueLength`), `inferq limits`. */
export async function setMaxQueueLength(redis: RedisClient, keys: ModelKeys, maxQueueLength: number): Promise<void> {
  if (maxQueueLength > 0) await redis.hset(keys.limits, 'maxQueueLength', String(maxQueueLength));
  else await redis.hdel(keys.limits, 'maxQueueLength');
}

export interface TenantSettings {
  /** Weight of its share (default 1). */
  weight?: number;
  /** Most places it may hold (0 = no cap). */
  maxQueued?: number;
  /** Most of each worker's model slots (batch places in flight) its requests may take at once (0 = no cap). */
  maxSlots?: number;
}

/** Sets a tenant's weight and/or caps (a cap of 0 removes it). */
export async function setTenant(redis: RedisClient, keys: ModelKeys, tenant: string, s: TenantSettings): Promise<void> {
  if (s.weight !== undefined) await redis.hset(keys.tenants, `${tenant}|weight`, String(s.weight));
  for (const field of ['maxQueued', 'maxSlots'] as const) {
    const v = s[field];
    if (v === undefined) continue;
    if (v > 0) await redis.hset(keys.tenants, `${tenant}|${field}`, String(v));
    else await redis.hdel(keys.tenants, `${tenant}|${field}`);
  }
}

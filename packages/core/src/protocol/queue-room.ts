/**
 * The bound on a model's queue (`maxQueueLength`) as a ledger in Redis
 * (`room-reserve-2.lua`): one member per request admitted and not yet
 * answered, all clients and shards together (one model-wide key).
 *
 * Invariants, each held by a script rather than by arithmetic in a caller:
 * - a request holds at most one place: admitting the same request id again
 *   (a resend, a retried call after a lost reply) reserves nothing more;
 * - a place is given back at most once: by the settle script that sets the
 *   request's done bit (so a re-run of its job gives nothing back twice), or
 *   by `releaseRoom` (idempotent: ZREM) for a request that will not be sent;
 * - a client that dies holding places loses them within a lease TTL: every
 *   reserve renews the caller's lease and reclaims the places of clients
 *   whose lease expired (request ids start with their client's id).
 */
import type { RedisClient } from '../redis-connection.js';
import { callScript } from '../lua-scripts.js';
import type { ModelKeys } from './keys.js';

/** How long a client's places outlive its last reserve or renewal. */
export const ROOM_LEASE_MS = 3000;

export interface RoomReservation {
  /** The ledger's length before this call. */
  length: number;
  /** One flag per request id: admitted (holds a place now) or refused. */
  admitted: boolean[];
  /** Places of dead clients given back by this call. */
  reclaimed: number;
}

/**
 * Admits what fits of `requestIds` (in order) under `maxQueueLength`, renews
 * `client`'s lease and reclaims dead clients' places. With no ids, it only
 * renews and reclaims; `client` '' only reclaims (a worker's periodic call).
 */
export async function reserveRoom(redis: RedisClient, keys: ModelKeys, client: string, requestIds: readonly string[], maxQueueLength: number): Promise<RoomReservation> {
  const reply = (await callScript(redis, 'room-reserve', [keys.room, keys.roomLeases], [client, String(maxQueueLength), String(ROOM_LEASE_MS), ...requestIds])) as number[];
  return { length: Number(reply[0]), reclaimed: Number(reply[1]), admitted: reply.slice(2).map((x) => Number(x) === 1) };
}

/** Gives back the places of `requestIds` (answered, or never to be sent); resolves with how many were held. */
export async function releaseRoom(redis: RedisClient, roomKey: string, requestIds: readonly string[]): Promise<number> {
  if (requestIds.length === 0) return 0;
  return Number(await callScript(redis, 'room-release', [roomKey], [...requestIds]));
}

/** Requests holding a place in the model's queue (admitted, not yet answered). */
export async function roomLength(redis: RedisClient, keys: ModelKeys): Promise<number> {
  return Number(await redis.zcard(keys.room));
}

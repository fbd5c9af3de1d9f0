/**
 * Client side of the cache and of single-flight, for one tick of requests in
 * one round trip (script `flight-claim-var.lua`): each request is a cache
 * hit, the owner of a new flight (the caller enqueues it), or a waiter on an
 * identical request already in flight in some process (its result will be
 * pushed to this client's inbox by the worker that settles the flight).
 */
import type { Redis } from 'ioredis';
import { callScript } from './lua-scripts.js';
import type { ModelKeys } from './redis-keys.js';
import { JobLostError, errorToWire } from './errors.js';
import { encodeResultPayload } from './wire-format.js';
import { appendSettle, type SettleItem } from './batch-settle.js';

export interface FlightRequest {
  id: string;
  key: string;
  /** How long the caller still waits: the marker's TTL. */
  ttlMs: number;
}

export type FlightClaim = { kind: 'hit'; value: unknown } | { kind: 'owner' } | { kind: 'joined' };

/** Requests per script call: bounds how long one call holds Redis. */
const CHUNK = 256;

export async function claimFlights(
  redis: Redis,
  keys: ModelKeys,
  tick: { client: string; requests: readonly FlightRequest[] },
): Promise<FlightClaim[]> {
  const out: FlightClaim[] = [];
  for (let start = 0; start < tick.requests.length; start += CHUNK) {
    const chunk = tick.requests.slice(start, start + CHUNK);
    const redisKeys: string[] = [keys.cacheLru, keys.cacheVal, keys.cacheExp];
    const args: string[] = [tick.client];
    for (const r of chunk) {
      redisKeys.push(keys.flight(r.key), keys.flightWaiters(r.key));
      args.push(r.key, r.id, String(Math.max(1, Math.ceil(r.ttlMs))));
    }
    const replies = (await callScript(redis, 'flight-claim', redisKeys, args)) as unknown[];
    for (const reply of replies) {
      if (Array.isArray(reply)) out.push({ kind: 'hit', value: JSON.parse(String(reply[1])) as unknown });
      else if (Number(reply) === 2) out.push({ kind: 'owner' });
      else out.push({ kind: 'joined' });
    }
  }
  return out;
}

/**
 * Gives up flights this client owns but could not enqueue: their waiters get
 * a JobLostError now, and the markers go, so the next identical request
 * computes instead of waiting for a job that does not exist.
 */
export async function releaseFlights(
  redis: Redis,
  keys: ModelKeys,
  client: string,
  flights: ReadonlyArray<{ id: string; key: string }>,
  reason: string,
): Promise<void> {
  const payload = encodeResultPayload({ ok: 0, error: errorToWire(new JobLostError(reason)), worker: client });
  const items: SettleItem[] = flights.map((f) => ({ requestId: f.id, client, cacheKey: f.key, flight: true, payload }));
  const pipeline = redis.pipeline();
  appendSettle(pipeline, keys, items, { maxSize: 1, cacheTtlMs: 0, inboxTtlMs: 60_000 });
  const results = await pipeline.exec();
  const failed = results?.find(([err]) => err);
  if (failed?.[0]) throw failed[0];
}


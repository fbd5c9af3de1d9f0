/**
 * Client side of the cache and of single-flight, for one tick of requests in
 * one round trip (script `flight-claim-var.lua`): each request is a cache
 * hit, the owner of a new flight (the caller enqueues it), or a waiter of the
 * flight already open for its cache key, in any process (the flight's settle
 * pushes its outcome to this client's inbox).
 */
import type { RedisClient } from '../redis-connection.js';
import { callScript } from '../lua-scripts.js';
import type { ModelKeys } from './keys.js';

/** Reply codes of `flight-claim-var.lua`. */
export const ClaimReply = { HIT: 1, OWNER: 2, JOINED: 3 } as const;

export interface ClaimRequest {
  id: string;
  key: string;
  /** Redis time (epoch ms) until which the caller waits. */
  deadline: number;
}

export type ClaimOutcome =
  /** The cached output, as stored (JSON text; the caller decodes it, so one bad entry fails one request). */
  | { kind: 'hit'; valueJson: string }
  | { kind: 'owner' }
  | { kind: 'joined'; flightId: string; owner: string };

/** Requests per script call: bounds how long one call holds Redis. */
const CHUNK = 256;

/**
 * Most cache keys the hits ZSET holds between two folds by a worker (the
 * oldest hits go first past it). Honest clients add one member per cache
 * entry hit, so a cap at least the cache's size (per shard) loses none.
 */
export const DEFAULT_HITS_CAP = 65_536;

/**
 * Runs under the client role: the cache is read, never written (a hit is
 * recorded in `cacheHits`, which workers fold into the recency order).
 */
export async function claimFlights(redis: RedisClient, keys: ModelKeys, client: string, requests: readonly ClaimRequest[], hitsCap: number = DEFAULT_HITS_CAP): Promise<ClaimOutcome[]> {
  const out: ClaimOutcome[] = [];
  for (let start = 0; start < requests.length; start += CHUNK) {
    const chunk = requests.slice(start, start + CHUNK);
    // The value and expiry keys go as arguments: declared keys need write permission (flight-claim-var.lua).
    const redisKeys: string[] = [keys.cacheHits];
    const args: string[] = [client, keys.cacheVal, keys.cacheExp, String(hitsCap)];
    for (const r of chunk) {
      redisKeys.push(keys.flight(r.key));
      args.push(r.key, r.id, String(Math.round(r.deadline)));
    }
    const replies = (await callScript(redis, 'flight-claim', redisKeys, args)) as unknown[][];
    for (const reply of replies) {
      const code = Number(reply[0]);
      if (code === ClaimReply.HIT) out.push({ kind: 'hit', valueJson: String(reply[1]) });
      else if (code === ClaimReply.OWNER) out.push({ kind: 'owner' });
      else if (code === ClaimReply.JOINED) out.push({ kind: 'joined', flightId: String(reply[1]), owner: String(reply[2]) });
      else throw new Error(`flight-claim: unknown reply ${JSON.stringify(reply)}`);
    }
  }
  return out;
}

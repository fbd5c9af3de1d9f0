/**
 * A client's periodic tick (script `client-tick-var.lua`): heartbeat, Redis
 * time, unread results, and the checks of requests that have waited long —
 * does their job still exist, is the flight they joined still alive (or
 * taken over by us), is the flight they own still theirs.
 */
import type { RedisClient } from '../redis-connection.js';
import { callScript } from '../lua-scripts.js';
import type { ModelKeys } from './keys.js';

/** Reply codes of a job check. */
export const JobState = { GONE: 0, ALIVE: 1, FAILED: 2 } as const;
export type JobState = (typeof JobState)[keyof typeof JobState];

/** Reply codes of a joined-flight check. */
export const JoinedState = { GONE: 0, ALIVE: 1, MOVED: 2, TAKEN_OVER: 3 } as const;

export type JoinedCheck =
  | { state: typeof JoinedState.GONE | typeof JoinedState.ALIVE | typeof JoinedState.TAKEN_OVER }
  | { state: typeof JoinedState.MOVED; flightId: string; owner: string };

export interface TickInput {
  client: string;
  heartbeatTtlMs: number;
  jobs: readonly string[];
  /** Flights we joined: our request id, the flight id we joined, its owner as last known, our deadline (Redis epoch ms). */
  joined: ReadonlyArray<{ requestId: string; key: string; flightId: string; owner: string; deadline: number }>;
  /** Flights we own: the flight id (our request id), its cache key, our deadline (Redis epoch ms). */
  owned: ReadonlyArray<{ flightId: string; key: string; deadline: number }>;
}

export interface TickResult {
  /** Redis time (epoch ms). */
  now: number;
  /** Result elements not yet handled (inbox + pending). */
  unread: number;
  /** The cache epoch (bumped by every clearCache), '' before the first. */
  cacheEpoch: string;
  /** What the workers serve, `<modelVersion>/<quantization>`, '' before a worker started. */
  served: string;
  jobs: JobState[];
  joined: JoinedCheck[];
  /** Per owned flight: -1 when no longer ours, else its number of waiters. */
  owned: number[];
}

export async function runClientTick(redis: RedisClient, keys: ModelKeys, t: TickInput): Promise<TickResult> {
  const redisKeys: string[] = [keys.clientAlive(t.client), keys.inbox(t.client), keys.inboxPending(t.client)];
  const args: string[] = [String(t.heartbeatTtlMs), t.client, String(t.jobs.length), String(t.joined.length), String(t.owned.length)];
  for (const j of t.jobs) redisKeys.push(keys.job(j));
  for (const w of t.joined) {
    redisKeys.push(keys.flight(w.key), keys.clientAlive(w.owner));
    args.push(w.requestId, w.flightId, String(Math.round(w.deadline)));
  }
  for (const o of t.owned) {
    redisKeys.push(keys.flight(o.key));
    args.push(o.flightId, String(Math.round(o.deadline)));
  }
  // Read only, so passed as arguments: declared keys need write permission (client-tick-var.lua).
  args.push(keys.cacheEpoch, keys.served);
  const reply = (await callScript(redis, 'client-tick', redisKeys, args)) as unknown[];
  let i = 4;
  const jobs = t.jobs.map(() => Number(reply[i++]) as JobState);
  const joined = t.joined.map((): JoinedCheck => {
    const r = reply[i++] as unknown[];
    const state = Number(r[0]);
    if (state === JoinedState.MOVED) return { state, flightId: String(r[1]), owner: String(r[2]) };
    return { state: state as typeof JoinedState.GONE | typeof JoinedState.ALIVE | typeof JoinedState.TAKEN_OVER };
  });
  const owned = t.owned.map(() => Number(reply[i++]));
  return { now: Number(reply[0]), unread: Number(reply[1]), cacheEpoch: String(reply[2] ?? ''), served: String(reply[3] ?? ''), jobs, joined, owned };
}

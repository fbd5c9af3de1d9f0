/**
 * A client's view of its requests: a `Flight` is one request as Redis sees
 * it (one id, one place in a job or in a flight of another process); the
 * callers of this process that asked for the same input share it.
 *
 * Where a flight is, and who answers it:
 *   new       in a coalescing stage, not yet in Redis;
 *   owner     owns the flight of its cache key: its job computes it, its
 *             settle also answers the waiters of other processes;
 *   waiter    joined the flight of another request (any process): that
 *             flight's settle answers it;
 *   uncached  no cache key: its own job answers it.
 * An owner stays tracked after its own callers gave up, until its job ends:
 * waiters elsewhere may still depend on it.
 */

/** One caller waiting for a result. */
export interface Caller {
  flight: Flight;
  readonly start: number;
  /** Local epoch ms. */
  readonly deadline: number;
  readonly timeoutMs: number;
  done: boolean;
  resolve(r: unknown): void;
  reject(e: Error): void;
}

export type FlightRole = 'new' | 'owner' | 'waiter' | 'uncached';

export interface Flight {
  /** Request id: the item's id in its job, or our waiter entry in another flight. */
  readonly id: string;
  /** Cache key; dropped (undefined) when the cache is unusable. */
  key: string | undefined;
  /** Canonical JSON of the input. */
  readonly input: string;
  /** The queue shard it goes to (by its cache key): its claim, job, flight and results live there. */
  readonly shard: number;
  readonly callers: Caller[];
  role: FlightRole;
  /** The latest deadline of its callers, local epoch ms. */
  deadline: number;
  /** The deadline Redis was last told (local epoch ms); a later `deadline` is sent by the next tick. */
  sentDeadline: number;
  /** Local epoch ms when it last entered Redis (claimed, joined or enqueued). */
  since: number;
  /** The job that carries it (owner, uncached), once enqueued. */
  jobId: string | undefined;
  /** The flight it joined (waiter): its id and owner, as last known. */
  joined: { flightId: string; owner: string } | undefined;
  /** Seen gone (no job, no flight) by the last check: if still unanswered at the next, it is sent again. */
  suspect: boolean;
  /** Set when the request joined an identical one in flight (here or in another process). */
  coalesced: boolean;
  /** Counted in stats as a hit or a miss. */
  counted: boolean;
  /** Counted in the model's queue length (admitted under maxQueueLength); its settle gives the room back. */
  queued?: boolean;
  /** Sent again after transient Redis failures (transient-retry.ts): when the first was, and how often. */
  retry?: { first: number; attempts: number };
}

export function hasLiveCallers(flight: Flight): boolean {
  for (const c of flight.callers) if (!c.done) return true;
  return false;
}

/** Back to `new`, to be claimed or enqueued again. */
export function resetFlight(flight: Flight, now: number): void {
  flight.role = 'new';
  flight.jobId = undefined;
  flight.joined = undefined;
  flight.suspect = false;
  flight.since = now;
}

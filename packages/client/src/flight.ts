/**
 * A client's view of its requests: a `Flight` is one request as Redis sees
 * it (one id, one place in a job or in a flight of another process); the
 * callers of this process that asked for the same input share it.
 *
 * The state machine (every change goes through `moveTo`, which refuses an
 * edge not drawn here; docs/architecture.md draws it):
 *
 *   new ──claim sent──► claiming ──hit──────────────────────────► settled
 *    │                     │ ├─owner──► owner ──sent──► enqueuing ──added──► enqueued ──answer──► settled
 *    │                     │ └─joined─► waiter ─taken over─► owner      │         │
 *    └──(uncached) sent──────────────────────────────────► enqueuing    │         └─lost/resend─► new
 *                                                                        └─refused/failed──► settled
 *   waiter ──dropped for another's deadline, or lost──► new
 *
 * Invariants:
 * - A flight with a Redis call in flight (`claiming`, `enqueuing`) is never
 *   forgotten: the reply is applied to the state it was sent from, then a
 *   flight nobody here wants any more is let go (`InferenceClient.letGo`).
 * - A flight this client owns in Redis (`owns`) and has not sent is released
 *   there when its callers all give up (its waiters elsewhere claim again);
 *   one that was sent stays tracked until its job ends (its waiters depend on it).
 * - A flight that may hold a place in the queue ledger (`room`) gives it back
 *   when it ends unsent; a sent one's place goes back in the worker's settle.
 */

import type { Priority } from '@inferq/core/protocol';
import type { FlightTrace } from './request-tracing.js';

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

export type FlightState = 'new' | 'claiming' | 'owner' | 'waiter' | 'enqueuing' | 'enqueued' | 'settled';

/** The edges of the state machine above; anything else is a bug. */
const EDGES: Readonly<Record<FlightState, readonly FlightState[]>> = {
  new: ['claiming', 'enqueuing', 'settled'],
  claiming: ['owner', 'waiter', 'new', 'settled'],
  owner: ['enqueuing', 'new', 'settled'],
  waiter: ['owner', 'new', 'settled'],
  enqueuing: ['enqueued', 'owner', 'new', 'settled'],
  enqueued: ['owner', 'new', 'settled'],
  settled: [],
};

export interface Flight {
  /** Request id: the item's id in its job, or our waiter entry in another flight. */
  readonly id: string;
  /** Cache key; dropped (undefined) when the cache is unusable. */
  key: string | undefined;
  /** Canonical JSON of the input, or its compact form when `compact` (wire-input.ts). */
  readonly input: string;
  readonly compact: boolean;
  /** The queue shard it goes to (by its cache key): its claim, job, flight and results live there. */
  readonly shard: number;
  readonly callers: Caller[];
  state: FlightState;
  /** This client owns the flight hash of `key` in Redis (claimed it, or took it over). */
  owns: boolean;
  /** May hold a place in the model's queue ledger (admitted under maxQueueLength; giving back is idempotent). */
  room: boolean;
  /** The latest deadline of its callers, local epoch ms. */
  deadline: number;
  /** The deadline Redis was last told (local epoch ms); a later `deadline` is sent by the next tick. */
  sentDeadline: number;
  /** Local epoch ms when it last entered Redis (claimed, joined or enqueued). */
  since: number;
  /** The job that carries it, once enqueued. */
  jobId: string | undefined;
  /** The flight it joined (waiter): its id and owner, as last known. */
  joined: { flightId: string; owner: string } | undefined;
  /** Seen gone (no job, no flight) by the last check: if still unanswered at the next, it is sent again. */
  suspect: boolean;
  /** Set when the request joined an identical one in flight (here or in another process). */
  coalesced: boolean;
  /** Counted in stats as a hit or a miss. */
  counted: boolean;
  /** Its class: the best of its callers' while it is not yet sent (protocol/priority.ts). */
  priority: Priority;
  /** Its tenant's requests waiting when it was admitted (the ledger's count, or this client's in flight): its rank in its class. */
  rank: number;
  /** Sent again after transient Redis failures (transient-retry.ts): when the first was, and how often. */
  retry?: { first: number; attempts: number };
  /** Its `inferq.request` span while one is recorded or carried (request-tracing.ts); ended when its last caller is answered. */
  trace: FlightTrace | undefined;
}

export class FlightTransitionError extends Error {}

/** Moves a flight along one edge of the machine; an edge not drawn above throws (a bug, never a Redis outcome). */
export function moveTo(flight: Flight, to: FlightState): void {
  if (flight.state === to) return;
  if (!EDGES[flight.state].includes(to)) throw new FlightTransitionError(`flight ${flight.id}: no transition ${flight.state} -> ${to}`);
  flight.state = to;
}

export function hasLiveCallers(flight: Flight): boolean {
  for (const c of flight.callers) if (!c.done) return true;
  return false;
}

/** Back to `new`, to be claimed or enqueued again (a resend): what it held in Redis is no longer known to be its. */
export function resetFlight(flight: Flight, now: number): void {
  moveTo(flight, 'new');
  flight.owns = false;
  flight.jobId = undefined;
  flight.joined = undefined;
  flight.suspect = false;
  flight.since = now;
}

/**
 * The flights a client tracks, and how their callers are answered.
 *
 * Invariants:
 * - A flight is tracked (`get(f.id) === f`) from `infer()` until it is
 *   `forget`-ten, which moves it to `settled`; nothing else removes it.
 * - A caller is answered once (`settle`): a second answer is ignored, and an
 *   answered caller leaves the deadline heap at once.
 * - Outputs are values: of the callers of one flight, the first gets the
 *   decoded output and every other its own `structuredClone`, so no caller
 *   can change another's result (a copy costs only coalesced callers).
 * - Callers only ever see InferqErrors: a raw Redis error becomes
 *   INFERQ_REDIS_UNAVAILABLE, its cause kept.
 */
import { InferqError, RedisUnavailableError, type Logger, type StatsRecorder } from '@inferq/core';
import type { DeadlineScheduler } from './deadline-scheduler.js';
import { hasLiveCallers, moveTo, type Caller, type Flight } from './flight.js';
import { endFlightTrace } from './request-tracing.js';

export interface ClientInferenceResult<O = unknown> {
  output: O;
  /** Answered from the result cache without running the model. */
  cached: boolean;
  /** Shared the computation of an identical request already in flight. */
  coalesced: boolean;
  /** Time from `infer()` to the result, in ms. */
  latencyMs: number;
  /** Id of the worker that computed (or found) the output: absent when the client answered from a cache itself. */
  worker?: string;
  /** Size of the model batch that computed the output: absent for any cache hit (no model call). */
  batchSize?: number;
}

/** How a flight was answered with a value. */
export interface Answer {
  output: unknown;
  cached: boolean;
  worker?: string | undefined;
  batchSize?: number | undefined;
  /** Answered by the client itself (a cache read): nothing was shared. */
  clientHit?: boolean;
}

export interface FlightTableOptions {
  recorder: StatsRecorder;
  deadlines: DeadlineScheduler<Caller>;
  logger: Logger;
  model: string;
}

export class FlightTable {
  /** Flights waiting for a result, by request id. */
  private readonly byId = new Map<string, Flight>();
  /** Cached-mode flights by cache key, for in-process single-flight. */
  private readonly byKey = new Map<string, Flight>();
  /** Latencies of results being delivered, recorded once per inbox read. */
  private latencies: number[] = [];
  /** Results delivered: this window's count and the last window's rate (for retryAfterMs hints). */
  private readonly answered = { since: Date.now(), count: 0, rate: 0 };

  constructor(private readonly o: FlightTableOptions) {}

  add(f: Flight): void {
    this.byId.set(f.id, f);
    if (f.key !== undefined) this.byKey.set(f.key, f);
  }

  get(id: string): Flight | undefined {
    return this.byId.get(id);
  }

  /** The flight of this process for a cache key (single-flight within the process). */
  ofKey(key: string): Flight | undefined {
    return this.byKey.get(key);
  }

  tracked(f: Flight): boolean {
    return this.byId.get(f.id) === f;
  }

  /** Flights tracked now (this client's requests in flight). */
  size(): number {
    return this.byId.size;
  }

  values(): IterableIterator<Flight> {
    return this.byId.values();
  }

  /** The tracked flights of one shard (its tick checks them). */
  *ofShard(shard: number): Generator<Flight> {
    for (const f of this.byId.values()) if (f.shard === shard) yield f;
  }

  /** Stops tracking a flight: it is settled (what it held in Redis was dealt with by its caller). */
  forget(f: Flight): void {
    moveTo(f, 'settled');
    this.byId.delete(f.id);
    this.dropKey(f);
  }

  /** The flight no longer serves its cache key here (it goes on without the cache). */
  dropKey(f: Flight): void {
    if (f.key !== undefined && this.byKey.get(f.key) === f) this.byKey.delete(f.key);
  }

  settle(caller: Caller, outcome: ClientInferenceResult | Error): void {
    if (caller.done) return;
    caller.done = true;
    // Leaves the deadline heap now: an answered request holds nothing until its deadline.
    this.o.deadlines.remove(caller);
    if (outcome instanceof Error) caller.reject(outcome);
    else caller.resolve(outcome);
    // The request's span ends with the answer of its last caller (once: endFlightTrace clears it).
    if (caller.flight.trace && !hasLiveCallers(caller.flight)) endFlightTrace(caller.flight, outcome);
  }

  /** Answers every waiting caller of a flight with a value, and forgets it. */
  resolve(flight: Flight, r: Answer): void {
    const now = Date.now();
    let given = false;
    flight.callers.forEach((c, i) => {
      if (c.done) return;
      const latencyMs = now - c.start;
      this.latencies.push(latencyMs);
      const output = given ? structuredClone(r.output) : r.output;
      given = true;
      // Same rule as the stats (count()): a client-side hit shares nothing; otherwise every caller but the
      // flight's first, and all of a flight that joined another process's, shared a computation.
      const result: ClientInferenceResult = { output, cached: r.cached, coalesced: !r.clientHit && (flight.coalesced || i > 0), latencyMs };
      if (r.worker !== undefined) result.worker = r.worker;
      if (r.batchSize !== undefined) result.batchSize = r.batchSize;
      this.settle(c, result);
    });
    this.forget(flight);
  }

  /** Answers every caller of the flights with one error (logged once), and forgets them. */
  fail(flights: readonly Flight[], err: unknown, what: string): void {
    const error =
      err instanceof InferqError
        ? err
        : new RedisUnavailableError(`${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err, details: { model: this.o.model } });
    this.o.logger.error({ err: error, requests: flights.length }, what);
    this.reject(flights, error);
  }

  /** Answers every caller of the flights with `err` without logging (an expected answer, logged by the caller), and forgets them. */
  reject(flights: readonly Flight[], err: Error): void {
    for (const f of flights) {
      for (const c of f.callers) this.settle(c, err);
      this.forget(f);
    }
  }

  /**
   * Stats: every caller is one request, a hit or a miss. Callers of one flight
   * beyond the first (and all of a flight that joined another process's) shared a computation.
   */
  count(flight: Flight, hit: boolean): void {
    const n = flight.callers.length;
    flight.counted = true;
    this.o.recorder.record({
      requests: n,
      cache_hits: hit ? n : 0,
      cache_misses: hit ? 0 : n,
      coalesced: hit ? 0 : flight.coalesced ? n : n - 1,
    });
  }

  /** Requests refused at the door (INFERQ_QUEUE_FULL): every caller is a request, counted once, and a refusal. */
  countRefused(flights: readonly Flight[]): void {
    let refused = 0;
    for (const f of flights) {
      if (!f.counted) this.count(f, false);
      refused += f.callers.length;
    }
    this.o.recorder.record({ refused });
  }

  /** A caller joined a flight of this process after its flight was counted. */
  recordJoin(flight: Flight): void {
    if (flight.counted) this.o.recorder.record({ requests: 1, cache_misses: 1, coalesced: 1 });
  }

  /** Records the latencies of the results delivered since the last call (once per inbox read or claim). */
  flushLatencies(): void {
    if (this.latencies.length === 0) return;
    const w = this.answered;
    const now = Date.now();
    if (now - w.since >= 1000) {
      w.rate = (w.count * 1000) / (now - w.since);
      w.since = now;
      w.count = 0;
    }
    w.count += this.latencies.length;
    this.o.recorder.record({ latencies: this.latencies });
    this.latencies = [];
  }

  /** Results delivered per second over the last full second or so (for retryAfterMs hints). */
  answeredPerSecond(): number {
    return Math.max(this.answered.rate, this.answered.count);
  }
}

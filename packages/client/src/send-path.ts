/**
 * The send path of a client: claim -> admit -> enqueue, three coalescing
 * stages (coalescing-stage.ts), each one round trip for whatever arrived
 * together. Every flight moves through it by the state machine of flight.ts.
 *
 *   claim    one script per shard: a cache hit, or the flight of its cache
 *            key opened (owner) or joined (waiter)             new -> claiming
 *   admit    only under maxQueueLength: places in the model's queue ledger,
 *            refused at once when full                        new|owner -> enqueuing
 *   enqueue  one add per shard, envelopes of maxEnvelopeItems  enqueuing -> enqueued
 *
 * Invariants:
 * - A reply is applied only to a flight still in the state the call was
 *   sent from; a flight answered meanwhile gets back what the reply gave it
 *   in Redis (an opened flight is released, an admitted place given back).
 * - A flight nobody waits for is let go by its state (`letGo`): never left
 *   owned and unsent in Redis, its queue place given back if it was not sent.
 * - A transient Redis failure (failover, restart) sends a stage's flights
 *   again after a backoff, within RETRY_WINDOW_MS, while their callers wait:
 *   every step is idempotent per request id.
 */
import type { JobsOptions, Queue } from 'bullmq';
import {
  DeadlineExceededError,
  InferqError,
  JobLostError,
  ProtocolError,
  QueueFullError,
  throttledLog,
  type Logger,
  type ModelKeys,
  type RedisClient,
} from '@inferq/core';
import {
  ENVELOPE_JOB_NAME,
  claimFlights,
  failurePayload,
  releaseFlights,
  releaseRoom,
  Admission,
  type ClaimOutcome,
  type RoomReservation,
  type RedisClock,
  type RequestEnvelope,
} from '@inferq/core/protocol';
import type { ResolvedClientOptions } from './client-options.js';
import { CoalescingStage } from './coalescing-stage.js';
import { hasLiveCallers, moveTo, resetFlight, type Flight } from './flight.js';
import type { FlightTable } from './flight-table.js';
import type { LocalResultCache } from './local-result-cache.js';
import { isTransientRedisError, retryDelayMs, RETRY_WINDOW_MS } from './transient-retry.js';
import { QueueAdmission } from './queue-admission.js';
import { packEnvelopes } from './envelope-packing.js';

/** One queue shard as the send path uses it. */
export interface SendShard {
  keys: ModelKeys;
  queue: Queue;
}

export interface SendPathOptions {
  client: string;
  opts: ResolvedClientOptions;
  /** Model-wide keys (the queue ledger). */
  keys: ModelKeys;
  shards: readonly SendShard[];
  cmd: RedisClient;
  clock: RedisClock;
  table: FlightTable;
  local: LocalResultCache | undefined;
  logger: Logger;
  /** Resolves once Redis is usable (start-up check), or rejects with why not. */
  whenUsable(): Promise<void>;
  /** True once the client is closing or broken: nothing is sent again. */
  stopped(): boolean;
}

/**
 * Finished jobs are kept for inspection (bull-board), but few and not for long
 * (`keepJobs`): they hold whole envelopes. A count of 0 removes at once.
 */
function envelopeJobOpts({ completed, failed, maxAgeSeconds }: ResolvedClientOptions['keepJobs']): JobsOptions {
  const keep = (count: number) => (count === 0 ? true : { count, age: maxAgeSeconds });
  return { removeOnComplete: keep(completed), removeOnFail: keep(failed), attempts: 3, backoff: { type: 'exponential', delay: 200 } };
}

export class SendPath {
  /** Cached requests go through the claim stage (cache read, single-flight), misses then through admission and the enqueue stage. */
  private readonly claimStage = new CoalescingStage<Flight>(
    (fs) => this.claim(fs),
    (err, fs) => this.o.table.fail(fs, err, 'claim stage failed'),
    // Two claims in flight: a cache hit waits for at most part of one other round trip.
    2,
  );
  /** Admission under maxQueueLength (only used when it is set). */
  private readonly admitStage = new CoalescingStage<Flight>(
    (fs) => this.admit(fs),
    (err, fs) => this.o.table.fail(fs, err, 'queue admission failed'),
    2,
  );
  private readonly enqueueStage = new CoalescingStage<Flight>(
    (fs) => this.enqueue(fs),
    (err, fs) => this.o.table.fail(fs, err, 'enqueue stage failed'),
  );
  /** The model's queue bound, this client's side (queue-admission.ts). */
  private readonly admission: QueueAdmission;
  private readonly logQueueFull: ReturnType<typeof throttledLog>;
  private readonly jobOpts: JobsOptions;

  constructor(private readonly o: SendPathOptions) {
    this.logQueueFull = throttledLog(o.logger, 'warn');
    this.jobOpts = envelopeJobOpts(o.opts.keepJobs);
    this.admission = new QueueAdmission({ client: o.client, opts: o.opts, keys: o.keys, cmd: o.cmd, logger: o.logger, answeredPerSecond: () => o.table.answeredPerSecond() });
  }

  /** A new flight enters the path: claimed when it has a cache key, else straight to the queue. */
  send(f: Flight): void {
    if (f.key !== undefined) this.claimStage.push(f);
    else this.toQueue(f);
  }

  /** Results arrived (`answers` of them): as many requests may ask Redis for the places they freed. */
  freed(answers: number): void {
    this.admission.freed(answers);
  }

  /** Flights grouped by their shard, in the order they came. */
  private byShard(flights: readonly Flight[]): Map<SendShard, Flight[]> {
    const groups = new Map<SendShard, Flight[]>();
    for (const f of flights) {
      const shard = this.o.shards[f.shard] as SendShard;
      let g = groups.get(shard);
      if (!g) groups.set(shard, (g = []));
      g.push(f);
    }
    return groups;
  }

  /** Stage 1: cache read + single-flight claim for every cached request that arrived together. */
  private async claim(flights: Flight[]): Promise<void> {
    const keyed: Flight[] = [];
    for (const f of flights) {
      if (f.state !== 'new') continue; // answered, failed or let go while it waited here
      if (hasLiveCallers(f)) {
        moveTo(f, 'claiming');
        keyed.push(f);
      } else this.letGo(f); // every caller timed out before it was sent
    }
    if (keyed.length === 0) return;
    try {
      await this.o.whenUsable();
    } catch (err) {
      this.o.table.fail(keyed, err, 'Redis not usable');
      return;
    }
    // One script call per shard (each in its own hash slot), all in flight at once.
    await Promise.all([...this.byShard(keyed)].map(([shard, fs]) => this.claimShard(shard, fs)));
    this.o.table.flushLatencies();
  }

  private async claimShard(shard: SendShard, keyed: Flight[]): Promise<void> {
    let claims: ClaimOutcome[];
    try {
      claims = await claimFlights(
        this.o.cmd,
        shard.keys,
        this.o.client,
        keyed.map((f) => ({ id: f.id, key: f.key as string, deadline: this.o.clock.toRedis(f.deadline) })),
      );
    } catch (err) {
      if (/WRONGTYPE/.test((err as Error)?.message ?? '')) {
        // The cache or flight keys hold another type (written by something else): serve the
        // requests without the cache rather than fail them all, and say so loudly.
        const e = new ProtocolError(`The cache keys of model '${this.o.opts.model}' hold the wrong Redis type; computing without the cache. Run 'inferq clear-cache'.`, { cause: err });
        this.o.logger.error({ err: e, requests: keyed.length }, 'cache unusable');
        for (const f of keyed) this.uncache(f);
        return;
      }
      // The claim is idempotent per request id: sending it again after a lost reply is safe.
      for (const f of keyed) if (f.state === 'claiming') moveTo(f, 'new');
      const rest = this.retryLater(keyed, err, this.claimStage, 'cache read / single-flight claim');
      if (rest.length) this.o.table.fail(rest, err, 'cache read / single-flight claim failed');
      return;
    }
    const now = Date.now();
    // Each reply is applied to the flight as it was sent (claiming): nothing else moves a claiming flight.
    claims.forEach((claim, i) => {
      const f = keyed[i] as Flight;
      if (f.state !== 'claiming') {
        // Answered meanwhile. A joined flight's owner can settle before this reply is read (the
        // script made us a waiter, and the inbox has its own connection): it still counts as a
        // shared miss. A flight this claim opened is ours in Redis and nobody will send it: released.
        if (claim.kind === 'joined') f.coalesced = true;
        if (claim.kind !== 'hit' && !f.counted) this.o.table.count(f, false);
        if (claim.kind === 'owner') void this.releaseOwned([f], 'answered while its claim was in Redis', this.releasedError(f));
        return;
      }
      f.since = now;
      f.sentDeadline = f.deadline;
      if (claim.kind === 'hit') {
        let output: unknown;
        try {
          output = JSON.parse(claim.valueJson) as unknown;
        } catch (cause) {
          // One bad entry fails its own request only; the rest of the tick goes on.
          const err = new ProtocolError(`The cache entry for request ${f.id} is not JSON; delete it or clear the cache.`, { cause, details: { requestId: f.id, key: f.key } });
          this.o.table.fail([f], err, 'corrupt cache entry');
          return;
        }
        this.o.table.count(f, true);
        if (f.key !== undefined) this.o.local?.put(f.key, claim.valueJson);
        this.o.table.resolve(f, { output, cached: true, clientHit: true });
        return;
      }
      if (claim.kind === 'owner') {
        moveTo(f, 'owner');
        f.owns = true;
      } else {
        // An identical request of another process is in flight: its settle answers us too.
        moveTo(f, 'waiter');
        f.coalesced = true;
        f.joined = { flightId: claim.flightId, owner: claim.owner };
      }
      // Counted once it is known whether it shares another process's computation.
      if (!f.counted) this.o.table.count(f, false);
      // Its callers may all have given up while the claim was in Redis: an owned flight is released there.
      if (!hasLiveCallers(f)) this.letGo(f);
      else if (claim.kind === 'owner') this.toQueue(f);
    });
  }

  /**
   * Stage 2 (only when the model's queue is bounded): admission to the
   * model's queue ledger, fair between tenants. What does not fit is refused
   * at once (nothing is written for it), the rest goes on to the enqueue
   * stage. A stage of its own, two calls in flight: a refusal waits for its
   * own round trip, not behind an add in flight.
   */
  private async admit(flights: Flight[]): Promise<void> {
    const live = this.takeToSend(flights);
    if (live.length === 0) return;
    try {
      await this.o.whenUsable(); // the limits are read with the start-up check
    } catch (err) {
      this.unsend(live);
      await this.giveUp(live, err, 'Redis not usable');
      return;
    }
    if (!this.admission.bounded()) {
      // No bound after all (the limits were not known when these were routed): straight on.
      for (const f of live) this.enqueueStage.push(f);
      return;
    }
    let r: RoomReservation;
    try {
      // One model-wide ledger: the bound is the model's whatever the number of shards.
      r = await this.admission.reserve(live.map((f) => f.id));
    } catch (err) {
      // A reservation whose reply was lost holds its place until the resend (same request id:
      // admitted again, not counted twice) or this client's lease ends.
      for (const f of live) f.room = true;
      this.unsend(live);
      const rest = this.retryLater(live, err, this.admitStage, 'queue admission');
      if (rest.length === 0) return;
      await this.giveUp(rest, err, 'queue admission failed');
      return;
    }
    const refused: Flight[] = [];
    const gone: Flight[] = [];
    let capped = false;
    let admitted = 0;
    live.forEach((f, i) => {
      const d = r.decisions[i];
      if (f.state !== 'enqueuing') {
        // Answered or failed meanwhile (close(), a late result): a place it was given goes back.
        if (d === Admission.ADMITTED) gone.push(f);
      } else if (d === Admission.ADMITTED) {
        f.room = true;
        // Its place among its tenant's requests waiting (all clients): its rank in its class.
        f.rank = this.admission.rank(r.count + ++admitted, r.weight, r.count === 0 && admitted === 1);
        this.enqueueStage.push(f);
      } else {
        if (d === Admission.REFUSED_CAP) capped = true;
        refused.push(f);
      }
    });
    if (gone.length > 0) void this.releaseRoom(gone, 'answered while its admission was in Redis');
    if (refused.length > 0) {
      const err = this.admission.refusal(r, live.length, capped);
      this.unsend(refused);
      this.refuse(refused, err);
    }
  }

  /** Reads the operator's limits: at start (the client's start-up check) and every tick. */
  refreshLimits(): Promise<void> {
    return this.admission.refreshLimits();
  }

  /** Requests refused for a full queue: nothing of them is (or stays) in Redis. */
  private refuse(refused: Flight[], err: QueueFullError): void {
    // Refusals are the expected answer to a flood: a line every few seconds, not one per tick.
    this.logQueueFull({ maxQueueLength: err.details?.maxQueueLength, queued: err.details?.queued, tenant: err.details?.tenant, share: err.details?.share, reason: err.details?.reason, refused: refused.length, retryAfterMs: err.retryAfterMs }, 'queue full; requests refused');
    this.o.table.countRefused(refused);
    void this.giveUp(refused, err, 'queue full', { quiet: true });
  }

  /**
   * To the enqueue stage, through admission when maxQueueLength is set. The
   * model's queue just found full refuses at once: under a flood a refusal
   * costs no round trip and no wait behind other admissions.
   */
  toQueue(f: Flight): void {
    // Until the limits are known (the start-up check reads them), admission decides after reading them.
    if (!this.admission.needed()) {
      this.enqueueStage.push(f);
      return;
    }
    const refused = this.admission.fastRefusal();
    if (refused) this.refuse([f], refused);
    else this.admitStage.push(f);
  }

  /**
   * The flights of a send stage that are still to send (state new or owner),
   * moved to `enqueuing`; those nobody wants any more are let go instead.
   */
  private takeToSend(flights: readonly Flight[]): Flight[] {
    const out: Flight[] = [];
    for (const f of flights) {
      if (f.state !== 'new' && f.state !== 'owner') continue; // answered, failed or let go meanwhile
      if (!hasLiveCallers(f)) {
        this.letGo(f);
        continue;
      }
      moveTo(f, 'enqueuing');
      out.push(f);
    }
    return out;
  }

  /** Back from `enqueuing` to what they were before the send (a refusal, a retry after a backoff). */
  private unsend(flights: readonly Flight[]): void {
    for (const f of flights) if (f.state === 'enqueuing') moveTo(f, f.owns ? 'owner' : 'new');
  }

  /** Stage 3: one add for every request to compute that arrived together, packed into envelopes. */
  private async enqueue(flights: Flight[]): Promise<void> {
    // Admitted flights arrive here `enqueuing` already; the rest (no maxQueueLength) are taken now.
    const toSend: Flight[] = [];
    const fresh: Flight[] = [];
    for (const f of flights) {
      if (f.state === 'enqueuing') {
        if (hasLiveCallers(f)) toSend.push(f);
        else {
          // Every caller gave up between admission and now: never sent.
          moveTo(f, f.owns ? 'owner' : 'new');
          this.letGo(f);
        }
      } else fresh.push(f);
    }
    const unranked = this.takeToSend(fresh);
    // Not admitted through the ledger (no bound): ranked among this client's own requests in flight.
    let inFlight = this.o.table.size() - unranked.length;
    for (const f of unranked) f.rank = this.admission.rank(++inFlight, this.admission.weight, inFlight === 1);
    toSend.push(...unranked);
    for (const f of toSend) if (!f.counted) this.o.table.count(f, false);
    if (toSend.length === 0) return;
    try {
      await this.o.whenUsable();
    } catch (err) {
      this.unsend(toSend);
      await this.giveUp(toSend, err, 'Redis not usable');
      return;
    }
    await Promise.all([...this.byShard(toSend)].map(([shard, fs]) => this.enqueueShard(shard, fs)));
  }

  private async enqueueShard(shard: SendShard, toSend: Flight[]): Promise<void> {
    const { envelopes, members, priorities } = packEnvelopes(toSend, this.o.client, this.o.opts, this.o.clock);
    try {
      // One envelope (the usual tick) is one script call; addBulk would build an ioredis
      // pipeline for it, copying BullMQ's ~40 commands onto it (~4 % of a client's CPU).
      const jobs =
        envelopes.length === 1
          ? [await shard.queue.add(ENVELOPE_JOB_NAME, envelopes[0] as RequestEnvelope, { ...this.jobOpts, priority: priorities[0] as number })]
          : await shard.queue.addBulk(envelopes.map((data, i) => ({ name: ENVELOPE_JOB_NAME, data, opts: { ...this.jobOpts, priority: priorities[i] as number } })));
      const now = Date.now();
      jobs.forEach((job, i) => {
        for (const f of members[i] ?? []) {
          if (f.state !== 'enqueuing') continue; // answered meanwhile: its job is answered to nobody
          f.jobId = String(job.id);
          f.since = now;
          moveTo(f, 'enqueued');
          // Its callers may have given up while the add was in Redis: an unowned one is forgotten
          // (the worker's settle gives its place back); an owned one stays for its waiters.
          if (!hasLiveCallers(f)) this.letGo(f);
        }
      });
    } catch (err) {
      // Sent again, a job whose reply was lost may run twice: its requests are answered once
      // (by id), its flights settled once (by owner), the same output cached twice, and its
      // places in the queue ledger given back once (by id).
      this.unsend(toSend);
      const rest = this.retryLater(toSend, err, this.enqueueStage, 'enqueue');
      if (rest.length === 0) return;
      await this.giveUp(rest, err, `enqueue failed: ${(err as Error).message}`);
    }
  }

  /** Answers a flight taken over from a dead owner: ours to send now, or to release when nobody here waits. */
  takeOver(f: Flight): void {
    if (f.state !== 'waiter') {
      // Forgotten meanwhile (its callers gave up): we own it in Redis all the same, so release it.
      void this.releaseOwned([f], 'the request was taken over after its callers gave up', this.releasedError(f));
      return;
    }
    moveTo(f, 'owner');
    f.owns = true;
    f.joined = undefined;
    f.suspect = false;
    if (hasLiveCallers(f)) this.toQueue(f);
    else this.letGo(f);
  }

  /**
   * A flight nobody here waits for any more, in the state it is in now:
   * nothing sent, it is forgotten; owned and unsent, its Redis flight is
   * released (waiters elsewhere claim again) and its queue place given back;
   * sent and owned, it stays tracked until its job ends (others may wait on
   * it); with a Redis call in flight, the reply handler calls this again.
   */
  letGo(f: Flight): void {
    switch (f.state) {
      case 'claiming':
      case 'enqueuing':
      case 'settled':
        return;
      case 'enqueued':
        // Owned (others may wait on it) or holding a queue place (given back when its job is
        // answered, or here if the job vanishes unanswered): the monitor follows it to its end.
        if (f.owns || f.room) return;
        this.o.table.forget(f);
        return;
      case 'owner':
        this.o.table.forget(f);
        void this.releaseOwned([f], 'every caller gave up before it was sent', this.releasedError(f));
        if (f.room) void this.releaseRoom([f], 'every caller gave up before it was sent');
        return;
      case 'new':
      case 'waiter':
        this.o.table.forget(f);
        if (f.room) void this.releaseRoom([f], 'every caller gave up before it was sent');
        return;
    }
  }

  /** What the waiters of a released flight hear: the deadline code, which makes a waiter that still waits claim again. */
  private releasedError(f: Flight): InferqError {
    return new DeadlineExceededError(`The request that owned this flight (${f.id}) was given up by its caller before it was computed; claim again.`, { requestId: f.id });
  }

  /**
   * Flights that will not be sent (refused, failed): their callers get
   * `err`, their owned Redis flights close (waiters get the same), their
   * queue places go back.
   */
  private async giveUp(flights: Flight[], err: unknown, what: string, o: { quiet?: boolean } = {}): Promise<void> {
    const owned = flights.filter((f) => f.owns);
    const counted = flights.filter((f) => f.room);
    if (o.quiet) this.o.table.reject(flights, err as Error);
    else this.o.table.fail(flights, err, what);
    const error = err instanceof InferqError ? err : new JobLostError(what);
    await Promise.all([owned.length ? this.releaseOwned(owned, what, error) : undefined, counted.length ? this.releaseRoom(counted, what) : undefined]);
  }

  /** Flights we own but that will not be computed: their waiters elsewhere are told, the flights close. */
  private async releaseOwned(owned: Flight[], reason: string, error: InferqError = new JobLostError(reason)): Promise<void> {
    const payload = failurePayload(error, this.o.client);
    for (const f of owned) f.owns = false;
    await Promise.all(
      [...this.byShard(owned)].map(([shard, fs]) =>
        releaseFlights(this.o.cmd, shard.keys, this.o.client, fs.map((f) => ({ id: f.id, key: f.key as string })), payload).catch((err: unknown) =>
          this.o.logger.error({ err, flights: fs.length, shard: shard.keys.root }, 'releasing owned flights failed; their waiters take them over when this client stops'),
        ),
      ),
    );
  }

  /** Sends a flight again (its job or flight vanished, or a worker dropped it for another caller's deadline). */
  resend(f: Flight, stillOwner: boolean): void {
    if (!this.o.table.tracked(f) || f.state === 'claiming' || f.state === 'enqueuing') return;
    if (stillOwner && f.owns) {
      // Still ours in Redis: enqueue it again (admission again too: the same id holds one place at most).
      moveTo(f, 'owner');
      f.jobId = undefined;
      f.suspect = false;
      f.since = Date.now();
      this.toQueue(f);
      return;
    }
    resetFlight(f, Date.now());
    if (f.key !== undefined) this.claimStage.push(f);
    else this.toQueue(f);
  }

  /** Flights whose job failed for good or is lost: callers get JOB_LOST, owned flights close, places go back. */
  async lose(flights: Flight[], reason: string): Promise<void> {
    const live = flights.filter((f) => this.o.table.tracked(f));
    if (live.length === 0) return;
    await this.giveUp(live, new JobLostError(`Request lost: ${reason}.`), 'requests lost');
  }

  /** Every tick: the operator's limits read again, and this client's lease on its queue places renewed. */
  admissionTick(): void {
    if (!this.o.stopped()) this.admission.tick();
  }

  /** Sends a flight without its cache key: no cache read or write, no single-flight. */
  uncache(flight: Flight): void {
    this.o.table.dropKey(flight);
    flight.key = undefined;
    moveTo(flight, 'new');
    this.toQueue(flight);
  }

  /**
   * Gives back the places in the queue ledger of flights that will not be
   * sent (idempotent per request id). A failure is logged: the places then go
   * back when this client's lease ends (it stops, or dies).
   */
  private async releaseRoom(flights: Flight[], why: string): Promise<void> {
    for (const f of flights) f.room = false;
    await releaseRoom(this.o.cmd, this.o.keys, this.o.opts.tenant, flights.map((f) => f.id)).catch((err: unknown) =>
      this.o.logger.warn({ err, requests: flights.length, why }, 'giving back queue places failed; they go back when this client stops'),
    );
  }

  /**
   * Sends again, after a backoff, the flights a transient Redis failure caught (a failover, a
   * restart: see transient-retry.ts) while their callers still wait, within RETRY_WINDOW_MS of
   * their first failure. Returns the flights it did not take, for the caller to fail.
   */
  private retryLater(flights: Flight[], err: unknown, stage: CoalescingStage<Flight>, what: string): Flight[] {
    if (this.o.stopped() || !isTransientRedisError(err)) return flights;
    const now = Date.now();
    const again: Flight[] = [];
    const rest: Flight[] = [];
    let delay = 0;
    for (const f of flights) {
      const r = f.retry ?? { first: now, attempts: 0 };
      const wait = retryDelayMs(r.attempts + 1);
      if (hasLiveCallers(f) && now + wait < f.deadline && now + wait - r.first <= RETRY_WINDOW_MS) {
        r.attempts++;
        f.retry = r;
        delay = Math.max(delay, wait);
        again.push(f);
      } else rest.push(f);
    }
    if (again.length === 0) return rest;
    this.o.logger.warn({ err, requests: again.length, retryInMs: delay, attempt: Math.max(...again.map((f) => f.retry?.attempts ?? 0)) }, `${what}: transient Redis failure; sending again`);
    // Each stage skips what was answered or let go meanwhile (state machine: see flight.ts).
    setTimeout(() => {
      if (!this.o.stopped()) for (const f of again) stage.push(f);
    }, delay).unref();
    return rest;
  }
}

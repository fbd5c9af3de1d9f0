/**
 * The client's tick, once per CLIENT_TICK_MS: renews the heartbeat that
 * tells waiters in other processes this client still owns its flights,
 * follows Redis time, and checks the requests that have waited longer than
 * CHECK_AFTER_MS, so that none waits for something that no longer exists:
 *
 * - a job that failed for good: its callers get INFERQ_JOB_LOST now (the
 *   worker that failed it tells them too, unless it died first);
 * - a job that vanished (removed, or lost with Redis's data) or a flight that
 *   closed without our answer: seen twice in a row with no results unread,
 *   the request is sent again (at-least-once execution);
 * - a joined flight whose owner's heartbeat expired: taken over, and this
 *   client enqueues it (its other waiters stay and are served by our job);
 * - a caller that joined with a later deadline: the flight is told, so it
 *   lives, and its job runs, as long as anyone waits.
 */
import type { RedisClient } from '@inferq/core';
import type { Logger } from '@inferq/core';
import {
  CHECK_AFTER_MS,
  CLIENT_TICK_MS,
  HEARTBEAT_TTL_MS,
  JobState,
  JoinedState,
  runClientTick,
  type ModelKeys,
  type RedisClock,
} from '@inferq/core/protocol';
import { hasLiveCallers, type Flight } from './flight.js';

export interface FlightMonitorHooks {
  /** Flights this client tracks. */
  flights(): Iterable<Flight>;
  /** Whether `flight` is still tracked (answered flights are not). */
  tracked(flight: Flight): boolean;
  /** Send a flight again; `owner`: it still owns its flight in Redis (enqueue it, do not claim). */
  resend(flight: Flight, owner: boolean): void;
  /** A joined flight whose owner died is ours now: enqueue it. */
  takeOver(flight: Flight): void;
  /** Flights whose job failed for good, or that are lost with nobody left to send them for. */
  lose(flights: Flight[], reason: string): void;
  /** Stop tracking a flight nobody here waits for. */
  forget(flight: Flight): void;
  /** What every tick reads besides the checks: the cache epoch and what the workers serve. */
  observe(state: { cacheEpoch: string; served: string }): void;
}

export interface FlightMonitorOptions {
  redis: RedisClient;
  keys: ModelKeys;
  client: string;
  clock: RedisClock;
  logger: Logger;
  hooks: FlightMonitorHooks;
}

/** Checks per kind and tick: bounds one tick's script; the rest wait for the next tick. */
const MAX_CHECKS = 500;

interface Check {
  flight: Flight;
  /** The flight's state when the check was sent: a reply is applied only to a flight still in it. */
  state: Flight['state'];
  jobId: string | undefined;
  flightId: string | undefined;
  deadline: number;
}

export class FlightMonitor {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private lastErrorLog = 0;
  /** Settles after the first tick (whatever its outcome): requests wait for it to have Redis time. */
  readonly ready: Promise<void>;
  private markReady!: () => void;

  constructor(private readonly o: FlightMonitorOptions) {
    this.ready = new Promise((r) => (this.markReady = r));
  }

  start(): void {
    this.running = this.tick().finally(() => this.markReady());
    this.timer = setInterval(() => {
      // One tick at a time: a slow Redis does not pile ticks up.
      this.running ??= this.tick().finally(() => (this.running = undefined));
    }, CLIENT_TICK_MS);
    this.timer.unref();
    void this.running.finally(() => (this.running = undefined));
  }

  /** Stops ticking and removes the heartbeat, so waiters elsewhere take over this client's flights at once. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running?.catch(() => undefined);
    await this.o.redis.del(this.o.keys.clientAlive(this.o.client)).catch(() => undefined);
  }

  private async tick(): Promise<void> {
    const { o } = this;
    const now = Date.now();
    const jobs = new Map<string, Check[]>();
    const joined: Check[] = [];
    const owned: Check[] = [];
    for (const f of o.hooks.flights()) {
      // Only flights settled in a place Redis knows: joined, or enqueued (a flight in a stage is being sent).
      if (f.state !== 'waiter' && f.state !== 'enqueued') continue;
      const old = now - f.since >= CHECK_AFTER_MS;
      const extended = f.deadline > f.sentDeadline;
      const check: Check = { flight: f, state: f.state, jobId: f.jobId, flightId: f.joined?.flightId, deadline: f.deadline };
      if (f.state === 'waiter') {
        if ((old || extended) && joined.length < MAX_CHECKS) joined.push(check);
        continue;
      }
      if (f.owns && (old || extended) && owned.length < MAX_CHECKS) owned.push(check);
      if (old && f.jobId !== undefined && (jobs.has(f.jobId) || jobs.size < MAX_CHECKS)) {
        const list = jobs.get(f.jobId) ?? [];
        list.push(check);
        jobs.set(f.jobId, list);
      }
    }
    const jobIds = [...jobs.keys()];
    const sentAt = Date.now();
    let r;
    try {
      r = await runClientTick(o.redis, o.keys, {
        client: o.client,
        heartbeatTtlMs: HEARTBEAT_TTL_MS,
        jobs: jobIds,
        joined: joined.map((c) => ({
          requestId: c.flight.id,
          key: c.flight.key as string,
          flightId: c.flightId as string,
          owner: c.flight.joined?.owner as string,
          deadline: o.clock.toRedis(c.deadline),
        })),
        owned: owned.map((c) => ({ flightId: c.flight.id, key: c.flight.key as string, deadline: o.clock.toRedis(c.deadline) })),
      });
    } catch (err) {
      if (Date.now() - this.lastErrorLog >= 5000) {
        this.lastErrorLog = Date.now();
        o.logger.error({ err }, 'client tick failed (heartbeat and checks); retrying every tick');
      }
      return;
    }
    o.clock.observe(r.now, sentAt, Date.now());
    o.hooks.observe({ cacheEpoch: r.cacheEpoch, served: r.served });
    // Unread results may hold the answers of requests whose job or flight is gone: judge those later.
    const quiet = r.unread === 0;
    const unchanged = (c: Check) =>
      o.hooks.tracked(c.flight) && c.flight.state === c.state && c.flight.jobId === c.jobId && c.flight.joined?.flightId === c.flightId;

    const ownedWaiters = new Map<Flight, number>();
    owned.forEach((c, i) => {
      const n = r.owned[i] ?? -1;
      if (!unchanged(c)) return;
      ownedWaiters.set(c.flight, n);
      if (n >= 0) c.flight.sentDeadline = Math.max(c.flight.sentDeadline, c.deadline);
      else {
        // No longer our flight (settled, expired, taken over): our job answers only us.
        c.flight.owns = false;
        // One holding a queue place stays until its job ends (answered, or gone: then lost and given back).
        if (!hasLiveCallers(c.flight) && !c.flight.room) o.hooks.forget(c.flight);
      }
    });

    jobIds.forEach((jobId, i) => {
      const state = r.jobs[i];
      const checks = (jobs.get(jobId) ?? []).filter(unchanged);
      if (state === JobState.ALIVE) {
        for (const c of checks) c.flight.suspect = false;
      } else if (state === JobState.FAILED) {
        if (checks.length) o.hooks.lose(checks.map((c) => c.flight), `job ${jobId} failed for good`);
      } else if (quiet) {
        for (const c of checks) {
          const stillOwner = c.flight.owns && (ownedWaiters.get(c.flight) ?? -1) >= 0;
          this.gone(c.flight, stillOwner, stillOwner && (ownedWaiters.get(c.flight) ?? 0) > 0);
        }
      }
    });

    joined.forEach((c, i) => {
      const reply = r.joined[i];
      if (!reply) return;
      const f = c.flight;
      if (!unchanged(c)) {
        // The flight moved on (its callers gave up, it was answered) while the tick was in Redis; a
        // takeover made us the owner all the same: the hook releases it rather than leave it owned and unsent.
        if (reply.state === JoinedState.TAKEN_OVER) o.hooks.takeOver(f);
        return;
      }
      if (reply.state === JoinedState.ALIVE) {
        f.suspect = false;
        f.sentDeadline = Math.max(f.sentDeadline, c.deadline);
      } else if (reply.state === JoinedState.MOVED) {
        f.suspect = false;
        f.sentDeadline = Math.max(f.sentDeadline, c.deadline);
        f.joined = { flightId: reply.flightId, owner: reply.owner };
      } else if (reply.state === JoinedState.TAKEN_OVER) {
        o.logger.warn({ requestId: f.id, previousOwner: f.joined?.owner }, 'the owner of a joined flight is gone; taking it over');
        o.hooks.takeOver(f);
      } else if (quiet) {
        this.gone(f, false, false);
      }
    });
  }

  /**
   * No job and no flight holds this request: the first time, it is only
   * suspect (its answer may be on its way); the second, it is sent again for
   * whoever still waits — here, or (for a flight we still own) elsewhere.
   */
  private gone(f: Flight, stillOwner: boolean, othersWait: boolean): void {
    if (!f.suspect) {
      f.suspect = true;
      return;
    }
    if (hasLiveCallers(f) || othersWait) {
      this.o.logger.warn({ requestId: f.id, state: f.state, jobId: f.jobId }, 'request lost in Redis (job or flight gone without an answer); sending it again');
      this.o.hooks.resend(f, stillOwner);
    } else if (stillOwner || f.room) {
      // Nobody waits, but an owned flight must close and a queue place go back (idempotent).
      this.o.hooks.lose([f], 'job lost');
    } else {
      this.o.hooks.forget(f);
    }
  }
}

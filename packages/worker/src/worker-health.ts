/**
 * Liveness and readiness of an `InferenceWorker`, as `InferenceWorker.health()`
 * answers them and a worker's `--metrics-port` serves them (`/healthz`,
 * `/readyz`; docs/http-endpoints.md has the Kubernetes probes).
 *
 * The contract, kept deliberately small:
 * - `live` false means restarting the process is the cure: the worker was
 *   stopped, every model slot is stuck (each call already past
 *   `modelTimeoutMs`: nothing will be computed until one returns, and a call
 *   cannot be cancelled; past `stuckExitFactor x modelTimeoutMs` the worker
 *   hands its jobs back and leaves by itself, `inferq-worker` with exit
 *   code 3), or its Redis command connection has been gone for longer than
 *   `redisGoneMs`. Starting and stopping gracefully are live.
 * - `ready` true means it takes jobs now: started, not stopping, not paused
 *   (every slot stuck pauses it), its Redis connection up, and its model's
 *   circuit breaker closed (an open breaker answers INFERQ_MODEL_UNAVAILABLE
 *   without calling the model: live, since a restart would not bring the
 *   model back, but not ready).
 * - `reasons` says why each false is false (empty when both are true), for a
 *   probe's log and a human; wording may change, the booleans do not.
 *
 * Computed from state the worker already keeps; no I/O, so a probe may call it
 * as often as it likes.
 */

export interface WorkerHealth {
  live: boolean;
  ready: boolean;
  /** Why `live` or `ready` is false; empty when both are true. */
  reasons: string[];
}

export interface HealthOptions {
  /** How long the Redis command connection may be gone before the worker is not live, ms. Default 30000. */
  redisGoneMs?: number;
}

export const HEALTH_DEFAULTS = Object.freeze({ redisGoneMs: 30_000 });

export type WorkerState = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';

/** What the worker knows about itself, read at the moment of asking. */
export interface HealthFacts {
  state: WorkerState;
  /** Model calls past modelTimeoutMs not yet returned, and the slots there are (`numWorkers`). */
  stuckCalls: number;
  slots: number;
  /** When every slot became stuck (ms, this clock); undefined while one is free. */
  stuckSince: number | undefined;
  /** The command connection's ioredis `status` (`ready`, `reconnecting`, ...); undefined before start. */
  redisStatus: string | undefined;
  /** When the command connection was last lost (ms); undefined while it is up. */
  redisDownSince: number | undefined;
  /** How long every slot may stay stuck before the worker leaves, ms (0: never). */
  stuckLimitMs?: number;
  /** The model's circuit breaker, and when it probes again (ms, this clock). */
  breaker?: 'closed' | 'open' | 'half-open';
  breakerRetryAt?: number;
  now: number;
}

export function assessHealth(f: HealthFacts, options: HealthOptions = {}): WorkerHealth {
  const redisGoneMs = options.redisGoneMs ?? HEALTH_DEFAULTS.redisGoneMs;
  const reasons: string[] = [];
  let live = true;
  let ready = true;
  if (f.state !== 'running') {
    ready = false;
    reasons.push(f.state === 'new' || f.state === 'starting' ? `not started (${f.state})` : f.state);
    if (f.state === 'stopped') live = false;
  }
  if (f.state === 'running' || f.state === 'stopping') {
    if (f.stuckCalls >= f.slots) {
      live = false;
      ready = false;
      const since = f.stuckSince === undefined ? '' : ` for ${f.now - f.stuckSince} ms`;
      const leaves = f.stuckLimitMs ? `; hands its jobs back and leaves once stuck for ${f.stuckLimitMs} ms` : '';
      reasons.push(`every model slot is stuck past modelTimeoutMs (${f.stuckCalls} of ${f.slots})${since}; paused${leaves}`);
    }
    if (f.breaker !== undefined && f.breaker !== 'closed') {
      ready = false;
      const probe = f.breaker === 'half-open' ? 'a probe call is in the model' : `probes again in ${Math.max(0, (f.breakerRetryAt ?? 0) - f.now)} ms`;
      reasons.push(`circuit breaker ${f.breaker}: the model failed every one of its last calls, requests are answered INFERQ_MODEL_UNAVAILABLE; ${probe}`);
    }
    if (f.redisStatus !== 'ready') {
      ready = false;
      const goneMs = f.redisDownSince === undefined ? 0 : f.now - f.redisDownSince;
      if (goneMs > redisGoneMs) live = false;
      reasons.push(`Redis connection ${f.redisStatus ?? 'absent'}${f.redisDownSince === undefined ? '' : ` for ${goneMs} ms`} (not live past ${redisGoneMs} ms)`);
    }
  }
  return { live, ready, reasons };
}

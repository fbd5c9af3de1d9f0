/**
 * A circuit breaker per worker for a model that is down: after `failures`
 * model calls in a row that failed (threw, or returned the wrong number of
 * outputs), the worker stops calling the model. While open, every call is
 * refused at once (its requests are answered INFERQ_MODEL_UNAVAILABLE) until
 * `backoffMs` has passed; then ONE call goes through as a probe (half-open).
 * A probe that returns closes the breaker; one that fails opens it again
 * with the back-off doubled (up to `maxBackoffMs`).
 *
 * Why consecutive failures and not a failure rate: a model that is down
 * fails every call, and poison-input isolation (bisection) interleaves the
 * failing halves with the ones that return, so a streak of N failures is
 * what a dead model shows and a few poison inputs do not (see
 * model-runner.ts for the order of the halves that guarantees it).
 * Timeouts are not failures here: a hang is contained by hang isolation.
 */

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerOptions {
  /** Failed calls in a row that open the breaker; 0 = never open. */
  failures: number;
  /** First back-off before a probe, ms. */
  backoffMs: number;
  /** Longest back-off, ms. */
  maxBackoffMs: number;
  /** Told of each change of state (for logs and health). */
  onChange?: (state: BreakerState, info: { streak: number; backoffMs: number }) => void;
  now?: () => number;
}

/** What the breaker lets a call do: go ahead, go as the one probe, or not go at all. */
export type Admission = 'call' | 'probe' | 'refused';

export class CircuitBreaker {
  private streak = 0;
  private openUntil = 0;
  private backoff: number;
  private st: BreakerState = 'closed';
  /** A probe is in the model: everything else is refused until it is back. */
  private probing = false;

  constructor(private readonly o: CircuitBreakerOptions) {
    this.backoff = o.backoffMs;
  }

  get state(): BreakerState {
    return this.st;
  }

  /** When the breaker will let a probe through (ms, `now()`'s clock); 0 while closed. */
  get retryAt(): number {
    return this.st === 'closed' ? 0 : this.openUntil;
  }

  admit(): Admission {
    if (this.o.failures <= 0 || this.st === 'closed') return 'call';
    if (this.probing || this.now() < this.openUntil) return 'refused';
    this.probing = true;
    this.set('half-open');
    return 'probe';
  }

  /** The outcome of a call admitted with `call` or `probe` (not of a refused one, nor of a timeout). */
  record(ok: boolean, admission: Admission): void {
    if (this.o.failures <= 0 || admission === 'refused') return;
    if (admission === 'probe') this.probing = false;
    if (ok) {
      this.streak = 0;
      if (this.st !== 'closed') {
        this.backoff = this.o.backoffMs;
        this.set('closed');
      }
      return;
    }
    this.streak++;
    if (admission === 'probe') {
      // Still down: wait longer before the next probe.
      this.backoff = Math.min(this.o.maxBackoffMs, this.backoff * 2);
      this.open();
    } else if (this.st === 'closed' && this.streak >= this.o.failures) this.open();
  }

  /** A probe that ended without an outcome (a timeout): let another probe through later. */
  abandon(admission: Admission): void {
    if (admission === 'probe') {
      this.probing = false;
      this.open();
    }
  }

  private open(): void {
    this.openUntil = this.now() + this.backoff;
    this.set('open');
  }

  private set(state: BreakerState): void {
    if (state === this.st) return;
    this.st = state;
    this.o.onChange?.(state, { streak: this.streak, backoffMs: this.backoff });
  }

  private now(): number {
    return this.o.now ? this.o.now() : Date.now();
  }
}

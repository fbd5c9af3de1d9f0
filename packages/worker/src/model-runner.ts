/**
 * Calls the model for one batch, under the model contract (`callModel`), and
 * protects the worker from the ways a model fails (docs/failure-modes.md):
 *
 * - **Poison inputs.** When a call throws, the batch is split in halves and
 *   each half called again, recursively, so only the input(s) that make the
 *   model throw fail; the others are answered. Both halves of a split are
 *   called before either is split further (breadth first): with one poison
 *   input every failing call is followed by one that returns, so a streak of
 *   failures means a model that is down, not a poison input (the circuit
 *   breaker relies on it). A batch of n with one poison input costs
 *   2·log2(n) extra calls (`poison_splits`). A wrong number of outputs is a
 *   model bug, not an input's: it fails the batch without splitting.
 * - **Bounded splitting.** At most `1 + 4·ceil(log2 n)` calls per batch (room
 *   for two poison inputs); an input whose callers' deadline passed is not
 *   called again (INFERQ_DEADLINE_EXCEEDED); past the budget the inputs not
 *   yet narrowed down fail with the model's error.
 * - **A model that is down.** The worker's `CircuitBreaker` opens after N
 *   failed calls in a row: a batch of 64 against a dead model costs 7 calls
 *   (the whole, then both halves at each of three levels) instead of 127, and
 *   while open, calls are refused (INFERQ_MODEL_UNAVAILABLE) until a probe.
 * - **A hung model.** A call past `timeoutMs` makes its inputs `timedOut`
 *   (the batch pipeline isolates them, see batch-pipeline.ts). The call
 *   itself cannot be cancelled: it stays counted as stuck until it returns,
 *   and its late result is dropped. The worker stops taking jobs while every
 *   model slot is stuck (`onStuck`), and leaves past a bound.
 *
 * Invariant: at most `slots` calls are in the model at once, counting calls
 * past their timeout that have not returned (a timed-out call keeps its slot
 * until the model gives it back; the next call waits for a free one).
 */
import { DeadlineExceededError, InferqError, ErrorCode, ModelUnavailableError, type Logger } from '@inferq/core';
import { callModel } from '@inferq/core/protocol';
import type { Admission, CircuitBreaker } from './circuit-breaker.js';

export type GroupResult =
  | { ok: true; output: unknown }
  /** `retryable`: the call timed out (`timedOut`); the input is not answered by the runner's caller as a failure. */
  | { ok: false; error: InferqError; retryable: boolean; timedOut?: boolean };

export interface ModelRun {
  /** One result per input, in order. */
  results: GroupResult[];
  /** Calls beyond the first (poison isolation). */
  extraCalls: number;
  /** Model time of all calls, ms. */
  ms: number;
  timeouts: number;
  /** Inputs refused because the circuit breaker was open (answered INFERQ_MODEL_UNAVAILABLE, not called). */
  refused: number;
  /** Inputs left unsplit because the batch's call budget ran out. */
  overBudget: number;
}

export interface RunOptions {
  /** Per input: the latest deadline of its callers (Redis epoch ms); a split call leaves out inputs past it. */
  deadlines?: readonly number[];
  /** Now on the deadlines' clock (Redis time). */
  now?: () => number;
}

export interface ModelRunnerOptions {
  run: (inputs: unknown[]) => Promise<ReadonlyArray<unknown>> | ReadonlyArray<unknown>;
  modelName: string;
  /** 0 = no timeout. */
  timeoutMs: number;
  isolatePoison: boolean;
  logger: Logger;
  /** Called with the number of calls stuck past their timeout, each time it changes. */
  onStuck: (stuck: number) => void;
  /** Most calls in the model at once (numWorkers); default unbounded. */
  slots?: number;
  /** The worker's circuit breaker; none = always call. */
  breaker?: CircuitBreaker;
}

/** Most model calls one batch of n inputs may cost: the first, and room to narrow down two poison inputs. */
export function callBudget(n: number): number {
  return 1 + 4 * Math.ceil(Math.log2(Math.max(2, n)));
}

const TIMED_OUT = Symbol('timed out');

export class ModelRunner {
  private stuck = 0;
  /** Calls in the model now (stuck ones included), and calls waiting for a slot. */
  private inModel = 0;
  private readonly waiting: Array<() => void> = [];
  private callsStarted = 0;

  constructor(private readonly o: ModelRunnerOptions) {}

  /** Calls in the model now, stuck ones included (never more than `slots`). */
  get calls(): number {
    return this.inModel;
  }

  private async acquire(): Promise<void> {
    const max = this.o.slots ?? Infinity;
    if (this.inModel < max) {
      this.inModel++;
      return;
    }
    await new Promise<void>((grant) => this.waiting.push(grant));
  }

  /** Gives a slot back when the model returned (not when its caller stopped waiting). */
  private release(): void {
    const next = this.waiting.shift();
    if (next) next(); // the slot passes to the next call: inModel unchanged
    else this.inModel--;
  }

  get timeoutMs(): number {
    return this.o.timeoutMs;
  }

  /** Model calls started by this process so far (a process whose count is 0 is fresh: crash isolation's proof). */
  get started(): number {
    return this.callsStarted;
  }

  async run(inputs: unknown[], options: RunOptions = {}): Promise<ModelRun> {
    const m: ModelRun = { results: new Array<GroupResult>(inputs.length), extraCalls: 0, ms: 0, timeouts: 0, refused: 0, overBudget: 0 };
    const b: Batch = { inputs, m, options, calls: 0, budget: callBudget(inputs.length) };
    const all = inputs.map((_, i) => i);
    const first = await this.attempt(b, all, undefined);
    if (first) await this.split(b, all, first);
    return m;
  }

  /**
   * One call on the inputs `idx` of the batch: fills their results and returns undefined, or returns
   * the error when the call threw and the inputs may be narrowed down (more than one, splittable).
   */
  private async attempt(b: Batch, idx: number[], fallback: InferqError | undefined): Promise<InferqError | undefined> {
    const { o } = this;
    const fill = (list: readonly number[], r: GroupResult) => {
      for (const i of list) b.m.results[i] = r;
    };
    let live = idx;
    if (b.calls > 0 && b.options.deadlines && b.options.now) {
      // A split call: inputs whose every caller stopped waiting are not called again.
      const now = b.options.now();
      const late = idx.filter((i) => (b.options.deadlines?.[i] ?? Infinity) <= now);
      if (late.length > 0) {
        fill(late, { ok: false, error: new DeadlineExceededError(`The request's deadline passed while the model's failures were narrowed down; not called again.`, { model: o.modelName }), retryable: false });
        live = idx.filter((i) => !late.includes(i));
        if (live.length === 0) return undefined;
      }
    }
    if (b.calls >= b.budget && fallback) {
      b.m.overBudget += live.length;
      fill(live, { ok: false, error: fallback, retryable: false });
      return undefined;
    }
    const admission: Admission = o.breaker ? o.breaker.admit() : 'call';
    if (admission === 'refused') {
      b.m.refused += live.length;
      const retryAt = o.breaker?.retryAt ?? 0;
      const error = new ModelUnavailableError(
        `Model '${o.modelName}' failed every one of this worker's last calls; it is not called until a probe after the back-off (in ${Math.max(0, retryAt - Date.now())} ms) succeeds.`,
        { model: o.modelName, breaker: o.breaker?.state },
      );
      fill(live, { ok: false, error, retryable: false });
      return undefined;
    }
    if (b.calls > 0) b.m.extraCalls++;
    b.calls++;
    const inputs = live.map((i) => b.inputs[i]);
    const t0 = performance.now();
    const outcome = await this.bounded(inputs);
    b.m.ms += performance.now() - t0;
    if (outcome === TIMED_OUT) {
      o.breaker?.abandon(admission);
      b.m.timeouts++;
      const error = new InferqError(
        ErrorCode.MODEL_TIMEOUT,
        `The model did not return within modelTimeoutMs (${o.timeoutMs} ms) for a batch of ${inputs.length}.`,
        { details: { model: o.modelName, batchSize: inputs.length } },
      );
      fill(live, { ok: false, error, retryable: true, timedOut: true });
      return undefined;
    }
    o.breaker?.record(outcome.ok, admission);
    if (outcome.ok) {
      outcome.slots.forEach((s, k) => {
        b.m.results[live[k] as number] = s.ok ? { ok: true, output: s.output } : { ok: false, error: s.error, retryable: false };
      });
      return undefined;
    }
    const splittable = o.isolatePoison && live.length > 1 && admission !== 'probe' && outcome.error.code !== ErrorCode.MODEL_OUTPUT_MISMATCH;
    if (!splittable) {
      fill(live, { ok: false, error: outcome.error, retryable: false });
      return undefined;
    }
    // The caller splits exactly these inputs.
    idx.splice(0, idx.length, ...live);
    return outcome.error;
  }

  /** Narrows a failed call down: both halves first, then each half that failed (breadth first, see the header). */
  private async split(b: Batch, idx: number[], error: InferqError): Promise<void> {
    if (idx.length <= 1) {
      for (const i of idx) b.m.results[i] = { ok: false, error, retryable: false };
      return;
    }
    const mid = idx.length >> 1;
    const failed: Array<{ idx: number[]; error: InferqError }> = [];
    // Halves one after the other: the model may not take concurrent calls.
    for (const half of [idx.slice(0, mid), idx.slice(mid)]) {
      const err = await this.attempt(b, half, error);
      if (err) failed.push({ idx: half, error: err });
    }
    for (const f of failed) await this.split(b, f.idx, f.error);
  }

  /** callModel raced against the timeout; a call past it stays counted as stuck until it returns. */
  private async bounded(inputs: unknown[]): Promise<Awaited<ReturnType<typeof callModel>> | typeof TIMED_OUT> {
    const { o } = this;
    await this.acquire();
    this.callsStarted++;
    const call = callModel(o.run as (inputs: unknown[]) => Promise<unknown[]>, inputs, { model: o.modelName });
    void call.then(
      () => this.release(),
      () => this.release(),
    );
    if (o.timeoutMs <= 0) return call;
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([call, new Promise<typeof TIMED_OUT>((r) => (timer = setTimeout(() => r(TIMED_OUT), o.timeoutMs)))]);
    clearTimeout(timer);
    if (outcome !== TIMED_OUT) return outcome;
    this.stuck++;
    o.logger.error({ model: o.modelName, batchSize: inputs.length, modelTimeoutMs: o.timeoutMs, stuck: this.stuck }, 'model call past modelTimeoutMs; its inputs are isolated (docs/failure-modes.md)');
    o.onStuck(this.stuck);
    void call.finally(() => {
      this.stuck--;
      o.logger.warn({ model: o.modelName, stuck: this.stuck }, 'a stuck model call returned; its late result is dropped');
      o.onStuck(this.stuck);
    });
    return TIMED_OUT;
  }
}

/** One batch's state across its calls. */
interface Batch {
  inputs: unknown[];
  m: ModelRun;
  options: RunOptions;
  /** Calls made so far, and the most it may make. */
  calls: number;
  budget: number;
}

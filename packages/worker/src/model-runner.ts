/**
 * Calls the model for one batch, under the model contract (`callModel`), and
 * protects the worker from two kinds of bad model behaviour:
 *
 * - **Poison inputs.** When a call throws, the batch is split in halves and
 *   each half called again, recursively, so only the input(s) that make the
 *   model throw fail; the others are answered. A batch of n with one poison
 *   input costs about 2·log2(n) extra calls (counted in stats as
 *   `poison_splits`). A wrong number of outputs is a model bug, not an
 *   input's: it fails the batch without splitting.
 * - **A hung model.** A call past `timeoutMs` fails its items as retryable
 *   (their jobs fail and BullMQ retries them, on another worker when this one
 *   is stuck). The call itself cannot be cancelled: it stays counted as
 *   stuck until it returns, and its late result is dropped. The worker stops
 *   taking jobs while every model slot is stuck (`onStuck`).
 *
 * Invariant: at most `slots` calls are in the model at once, counting calls
 * past their timeout that have not returned (a timed-out call keeps its slot
 * until the model gives it back; the next call waits for a free one).
 */
import { InferqError, ErrorCode, type Logger } from '@inferq/core';
import { callModel } from '@inferq/core/protocol';

export type GroupResult = { ok: true; output: unknown } | { ok: false; error: InferqError; retryable: boolean };

export interface ModelRun {
  /** One result per input, in order. */
  results: GroupResult[];
  /** Calls beyond the first (poison isolation). */
  extraCalls: number;
  /** Model time of all calls, ms. */
  ms: number;
  timeouts: number;
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
}

const TIMED_OUT = Symbol('timed out');

export class ModelRunner {
  private stuck = 0;
  /** Calls in the model now (stuck ones included), and calls waiting for a slot. */
  private inModel = 0;
  private readonly waiting: Array<() => void> = [];

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

  async run(inputs: unknown[]): Promise<ModelRun> {
    const m: ModelRun = { results: [], extraCalls: 0, ms: 0, timeouts: 0 };
    m.results = await this.call(inputs, m, true);
    return m;
  }

  private async call(inputs: unknown[], m: ModelRun, first: boolean): Promise<GroupResult[]> {
    if (!first) m.extraCalls++;
    const t0 = performance.now();
    const outcome = await this.bounded(inputs);
    m.ms += performance.now() - t0;
    if (outcome === TIMED_OUT) {
      m.timeouts++;
      const error = new InferqError(
        ErrorCode.MODEL_TIMEOUT,
        `The model did not return within modelTimeoutMs (${this.o.timeoutMs} ms) for a batch of ${inputs.length}; its requests are retried.`,
        { details: { model: this.o.modelName, batchSize: inputs.length } },
      );
      return inputs.map(() => ({ ok: false, error, retryable: true }));
    }
    if (outcome.ok) return outcome.slots.map((s) => (s.ok ? { ok: true, output: s.output } : { ok: false, error: s.error, retryable: false }));
    const splittable = this.o.isolatePoison && inputs.length > 1 && outcome.error.code !== ErrorCode.MODEL_OUTPUT_MISMATCH;
    if (!splittable) return inputs.map(() => ({ ok: false, error: outcome.error, retryable: false }));
    // Halves, one after the other: the model may not take concurrent calls.
    const mid = inputs.length >> 1;
    const left = await this.call(inputs.slice(0, mid), m, false);
    const right = await this.call(inputs.slice(mid), m, false);
    return [...left, ...right];
  }

  /** callModel raced against the timeout; a call past it stays counted as stuck until it returns. */
  private async bounded(inputs: unknown[]): Promise<Awaited<ReturnType<typeof callModel>> | typeof TIMED_OUT> {
    const { o } = this;
    await this.acquire();
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
    o.logger.error({ model: o.modelName, batchSize: inputs.length, modelTimeoutMs: o.timeoutMs, stuck: this.stuck }, 'model call past modelTimeoutMs; its requests are retried');
    o.onStuck(this.stuck);
    void call.finally(() => {
      this.stuck--;
      o.logger.warn({ model: o.modelName, stuck: this.stuck }, 'a stuck model call returned; its late result is dropped');
      o.onStuck(this.stuck);
    });
    return TIMED_OUT;
  }
}

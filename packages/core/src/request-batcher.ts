/**
 * `RequestBatcher`: the in-process dynamic batcher. Callers submit one item
 * at a time; the batcher hands the model whole batches and gives each caller
 * its own output (or its own error) back.
 *
 * Scheduling, and why:
 *
 * - A batch goes out as soon as `maxBatchSize` items are pending, or when the
 *   OLDEST pending item has waited `batchTimeoutMs`. The bound is on each
 *   item's age, as in Triton's `max_queue_delay`: a timer per batch would let
 *   an item that arrived just after a dispatch wait up to twice as long. One
 *   timer is armed for the oldest item's deadline, never one per item.
 * - `batchPolicy: 'eager'` adds one rule: when no batch is in flight (the
 *   model is idle), what is pending goes out on the next macrotask, without
 *   waiting for the batch to fill; while the model is busy, batches form as
 *   above. A lone request then waits for nothing but the model, and under
 *   load batches are as large as before. `'timeout'` (the default here) keeps
 *   the rules above alone.
 * - `batchTimeoutMs = 0` dispatches on the next macrotask (`setImmediate`),
 *   so items submitted in the same tick still share a batch (DataLoader's
 *   trick), and an idle batcher adds no wall-clock delay.
 * - At most `numWorkers` batches run at once. At that limit items keep
 *   accumulating (batches grow instead of queueing as tiny ones) and the next
 *   dispatch happens when a batch finishes: a full batch or an aged item then
 *   goes out at once, otherwise the age timer is re-armed.
 * - Items are batched lowest `priority` first, in arrival order among
 *   equals (pending-queue.ts); the age bound stays on the oldest item
 *   whatever its priority. Workers pass each job's BullMQ priority, so the
 *   class and fair-share order the queue gave a job holds inside the worker
 *   too, where a backlog of held items would otherwise be served FIFO.
 *   With `agingMs`, an item that waited that long goes first (one per batch),
 *   so a stream of high-priority items cannot starve a low one held here.
 * - With `groupLimit`, a group (a tenant) has at most that many items in
 *   running batches; its other items wait in place while others go.
 * - The processor is called on a microtask, never inside `submit()`'s stack,
 *   so a processor that submits again cannot re-enter the scheduler.
 *
 * Results, as in DataLoader, by the model contract (`callModel` in
 * protocol/model-contract.ts): a processor that throws rejects every item of
 * the batch (`ModelError`, original as `cause`; an `InferqError` passes
 * through); an `Error` in one output slot rejects that item alone; a result
 * that is not an array of one output per input rejects the whole batch
 * (`ModelOutputMismatchError`, naming both lengths). Every error is logged
 * before it reaches a caller, and no promise is ever left to reject unheard.
 */
import { z } from 'zod';
import { parseConfig, OptimizationConfigSchema, toConfigError } from './config.js';
import { ClosedError, ConfigError, ErrorCode, InferqError, NotStartedError, TimeoutError } from './errors.js';
import { createLogger, type Logger } from './logger.js';
import { PendingQueue } from './pending-queue.js';
import { callModel } from './protocol/model-contract.js';

/** When a batch that is not full may go out: see the header. */
export type BatchPolicy = 'eager' | 'timeout';

/** The batch function: one output (or `Error`) per input, in input order. */
export type BatchProcessor<I, O> = (inputs: I[]) => Promise<ReadonlyArray<O | Error>> | ReadonlyArray<O | Error>;

/** What `onBatch` is told after every batch has settled its items. */
export interface BatchInfo {
  /** Items in the batch. */
  size: number;
  /** Time the processor took, in ms. */
  durationMs: number;
  /** Items of the batch that were rejected (all of them when the processor threw). */
  failed: number;
}

export interface RequestBatcherOptions<I, O> {
  /** Called with each batch. Required. */
  process: BatchProcessor<I, O>;
  /** Largest batch handed to `process`, in items. 1..4096, default 32. */
  maxBatchSize?: number;
  /** Longest time the oldest pending item waits for its batch to fill, in ms. 0..60000, default 100; 0 = next macrotask. */
  batchTimeoutMs?: number;
  /** Most batches in flight at once. 1..256, default 4. */
  numWorkers?: number;
  /** `'eager'`: an idle model gets what is pending at once; `'timeout'`: only full batches or aged items go out. Default `'timeout'`. */
  batchPolicy?: BatchPolicy;
  /** Timeout of `submit()` and `submitMany()` when the call gives none, in ms. Default 30000; `Infinity` = none. */
  defaultTimeoutMs?: number;
  /** Shown in logs and errors. Default `'batcher'`. */
  name?: string;
  /** pino logger; default one from `createLogger('request-batcher')`. */
  logger?: Logger;
  /** Called after each batch (metrics). A throwing callback is logged and ignored. */
  onBatch?: (info: BatchInfo) => void;
  /**
   * Most items of a group (`SubmitOptions.group`) in running batches at once
   * (a tenant's cap on model slots); 0 or less = no limit. Asked each time a
   * batch forms. Items over their group's limit wait, in place, while other
   * items go.
   */
  groupLimit?: (group: string) => number;
  /**
   * An item that has waited this long (ms) goes into the next batch ahead of
   * any priority, oldest first, one per batch: items of a lower priority are
   * never starved by a stream of higher ones (a guaranteed minimum share of
   * one slot per batch). Default `Infinity` (strict priority).
   */
  agingMs?: number;
}

export interface SubmitOptions {
  /** Reject with `TimeoutError` after this many ms. Default: the batcher's `defaultTimeoutMs`; `Infinity` = none. */
  timeoutMs?: number;
  /** Lower is batched first (arrival order among equals). Default 0. */
  priority?: number;
  /** The items' group, for `groupLimit` (a tenant, in workers). */
  group?: string;
}

export interface StopOptions {
  /** Longest wait for in-flight batches, in ms; then unsettled items reject with `ClosedError`. Default 30000. */
  timeoutMs?: number;
}

export interface RequestBatcherStats {
  /** Items accepted by `submit*()` since construction. */
  totalRequests: number;
  /** Batches handed to the processor. */
  totalBatches: number;
  /** Items handed to the processor, over all batches (items that timed out before dispatch are in none). */
  batchedItems: number;
  /** `batchedItems / totalBatches`; 0 before the first batch. */
  avgBatchSize: number;
  /** Items waiting for a batch. */
  pending: number;
  /** Batches running now. */
  inFlight: number;
}

/** Node clamps larger timer delays to 1 ms, so longer timeouts would fire at once. */
const MAX_TIMER_MS = 2_147_483_647;
const DEFAULT_SUBMIT_TIMEOUT_MS = 30_000;
const DEFAULT_STOP_TIMEOUT_MS = 30_000;

/** A request timeout in ms: positive, at most 2^31-1, or `Infinity` for none. */
export const TimeoutMsSchema = z.union([z.number().positive().max(MAX_TIMER_MS), z.literal(Infinity)]);

const isFunction = (v: unknown): boolean => typeof v === 'function';

const RequestBatcherOptionsSchema = z
  .object({
    process: z.custom<BatchProcessor<unknown, unknown>>(isFunction, { message: 'must be a function (inputs) => outputs' }),
    maxBatchSize: OptimizationConfigSchema.shape.maxBatchSize,
    batchTimeoutMs: OptimizationConfigSchema.shape.batchTimeoutMs,
    numWorkers: OptimizationConfigSchema.shape.numWorkers,
    batchPolicy: z.enum(['eager', 'timeout']).default('timeout'),
    defaultTimeoutMs: TimeoutMsSchema.default(DEFAULT_SUBMIT_TIMEOUT_MS),
    name: z.string().min(1).max(200).default('batcher'),
    logger: z
      .custom<Logger>((v) => typeof v === 'object' && v !== null && isFunction((v as Logger).child), {
        message: 'must be a pino logger',
      })
      .optional(),
    onBatch: z.custom<(info: BatchInfo) => void>(isFunction, { message: 'must be a function' }).optional(),
    groupLimit: z.custom<(group: string) => number>(isFunction, { message: 'must be a function (group) => number' }).optional(),
    agingMs: z.number().positive().default(Infinity),
  })
  .strict();

interface ResolvedOptions<I, O> {
  readonly process: BatchProcessor<I, O>;
  readonly maxBatchSize: number;
  readonly batchTimeoutMs: number;
  readonly numWorkers: number;
  readonly batchPolicy: BatchPolicy;
  readonly defaultTimeoutMs: number;
  readonly name: string;
  readonly onBatch: ((info: BatchInfo) => void) | undefined;
  readonly groupLimit: ((group: string) => number) | undefined;
  readonly agingMs: number;
}

/** One submitted item, from `submit()` until it is settled. */
interface Item<I, O> {
  readonly input: I;
  /** `performance.now()` when accepted; the age bound is measured from here. */
  readonly enqueuedAt: number;
  readonly priority: number;
  readonly group: string | undefined;
  readonly resolve: (value: O) => void;
  readonly reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
  settled: boolean;
}

type State = 'idle' | 'running' | 'stopping' | 'stopped';

/** Read at call time (not cached) so test fake clocks apply. */
const now = (): number => performance.now();

export class RequestBatcher<I, O> {
  private readonly opts: ResolvedOptions<I, O>;
  private readonly log: Logger;
  private state: State = 'idle';
  /** In serving order (priority, then arrival), the oldest known too; O(1) removal of a timed-out item. */
  private readonly pending = new PendingQueue<Item<I, O>>();
  /** Items of each group in running batches (only with `groupLimit`). */
  private readonly groupRunning = new Map<string, number>();
  private readonly inFlight = new Set<Item<I, O>[]>();
  /** Cancels the single dispatch timer (setTimeout or setImmediate) when armed. */
  private cancelDispatchTimer: (() => void) | undefined;
  private stopping: Promise<void> | undefined;
  /** Set while `stop()` waits; called when nothing is pending or in flight. */
  private onDrained: (() => void) | undefined;
  private totalRequests = 0;
  private totalBatches = 0;
  private batchedItems = 0;

  constructor(options: RequestBatcherOptions<I, O>) {
    const parsed = parseConfig('RequestBatcher', RequestBatcherOptionsSchema, options);
    this.opts = Object.freeze({
      process: parsed.process as BatchProcessor<I, O>,
      maxBatchSize: parsed.maxBatchSize,
      batchTimeoutMs: parsed.batchTimeoutMs,
      numWorkers: parsed.numWorkers,
      batchPolicy: parsed.batchPolicy,
      defaultTimeoutMs: parsed.defaultTimeoutMs,
      name: parsed.name,
      onBatch: parsed.onBatch,
      groupLimit: parsed.groupLimit,
      agingMs: parsed.agingMs,
    });
    this.log = createLogger('request-batcher', parsed.logger).child({ batcher: parsed.name });
  }

  /** The resolved options (defaults applied), frozen. */
  /** The priority of the items that go next (the lowest `priority` pending); undefined when nothing is pending. */
  nextPriority(): number | undefined {
    return this.pending.firstPriority();
  }

  get options(): Readonly<Omit<ResolvedOptions<I, O>, 'process' | 'onBatch' | 'groupLimit' | 'agingMs'>> {
    const { maxBatchSize, batchTimeoutMs, numWorkers, batchPolicy, defaultTimeoutMs, name } = this.opts;
    return { maxBatchSize, batchTimeoutMs, numWorkers, batchPolicy, defaultTimeoutMs, name };
  }

  /** Starts accepting items. Idempotent; a stopped batcher may be started again. */
  start(): this {
    if (this.state === 'stopping') throw this.logged(new ClosedError(`RequestBatcher '${this.opts.name}' (stopping)`));
    this.state = 'running';
    return this;
  }

  /** True between `start()` and `stop()`. */
  get running(): boolean {
    return this.state === 'running';
  }

  get stats(): RequestBatcherStats {
    return {
      totalRequests: this.totalRequests,
      totalBatches: this.totalBatches,
      batchedItems: this.batchedItems,
      avgBatchSize: this.totalBatches === 0 ? 0 : this.batchedItems / this.totalBatches,
      pending: this.pending.size,
      inFlight: this.inFlight.size,
    };
  }

  /** Submits one item; rejects with `TimeoutError` after `timeoutMs` (default `defaultTimeoutMs`). */
  submit(input: I, options: SubmitOptions = {}): Promise<O> {
    const timeoutMs = this.submitTimeout(options);
    if (timeoutMs instanceof Error) return Promise.reject(timeoutMs);
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    const promise = this.enqueue(input, timeoutMs, options);
    this.afterEnqueue();
    return promise;
  }

  /** Submits one item with no timeout (the original's `submit_async`). */
  submitAsync(input: I): Promise<O> {
    return this.submit(input, { timeoutMs: Infinity });
  }

  /**
   * Submits several items in one call: one promise per input, in order. They
   * are scheduled together, so they share batches where sizes allow.
   */
  submitMany(inputs: readonly I[], options: SubmitOptions = {}): Promise<O>[] {
    const timeoutMs = this.submitTimeout(options);
    if (timeoutMs instanceof Error) return inputs.map(() => Promise.reject(timeoutMs));
    const refused = this.refusal();
    if (refused) return inputs.map(() => Promise.reject(refused));
    const promises = inputs.map((input) => this.enqueue(input, timeoutMs, options));
    if (inputs.length > 0) this.afterEnqueue();
    return promises;
  }

  /**
   * Stops accepting items, dispatches everything pending at once (no waiting
   * for `batchTimeoutMs`), waits up to `timeoutMs` for in-flight batches, then
   * rejects whatever is still unsettled with `ClosedError`. Bounded (unless
   * `timeoutMs` is `Infinity`); a second call while stopping returns the same promise.
   */
  stop(options: StopOptions = {}): Promise<void> {
    if (this.stopping) return this.stopping;
    const parsed = TimeoutMsSchema.optional().safeParse(options.timeoutMs);
    if (!parsed.success) return Promise.reject(this.logged(toConfigError('RequestBatcher.stop', parsed.error, { '(root)': 'timeoutMs' })));
    if (this.state !== 'running') {
      this.state = 'stopped';
      return Promise.resolve();
    }
    this.state = 'stopping';
    this.stopping = this.drainAndClose(parsed.data ?? DEFAULT_STOP_TIMEOUT_MS).finally(() => {
      this.stopping = undefined;
    });
    return this.stopping;
  }

  private async drainAndClose(timeoutMs: number): Promise<void> {
    this.dispatch();
    if (!this.isDrained()) {
      await new Promise<void>((resolve) => {
        const timer = timeoutMs === Infinity ? undefined : setTimeout(resolve, timeoutMs);
        this.onDrained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.onDrained = undefined;
    }
    const leftovers = [...this.pending.values(), ...[...this.inFlight].flat()].filter((item) => !item.settled);
    this.pending.clear();
    this.clearDispatchTimer();
    if (leftovers.length > 0) {
      const err = new ClosedError(`RequestBatcher '${this.opts.name}'`);
      this.log.warn({ err, unsettled: leftovers.length, stopTimeoutMs: timeoutMs }, 'stop timed out; rejecting unsettled items');
      for (const item of leftovers) this.rejectItem(item, err);
    }
    this.state = 'stopped';
  }

  private submitTimeout(options: SubmitOptions): number | ConfigError {
    if (options.timeoutMs === undefined) return this.opts.defaultTimeoutMs;
    const parsed = TimeoutMsSchema.safeParse(options.timeoutMs);
    return parsed.success ? parsed.data : this.logged(toConfigError('RequestBatcher.submit', parsed.error, { '(root)': 'timeoutMs' }));
  }

  /** Why a submit is refused now, if it is. */
  private refusal(): InferqError | undefined {
    if (this.state === 'running') return undefined;
    const what = `RequestBatcher '${this.opts.name}'`;
    return this.logged(this.state === 'idle' ? new NotStartedError(what) : new ClosedError(what));
  }

  private enqueue(input: I, timeoutMs: number, o: SubmitOptions): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      const item: Item<I, O> = { input, enqueuedAt: now(), priority: o.priority ?? 0, group: o.group, resolve, reject, timer: undefined, settled: false };
      if (timeoutMs !== Infinity) item.timer = setTimeout(() => this.timeOut(item, timeoutMs), timeoutMs);
      this.pending.add(item);
      this.totalRequests++;
    });
  }

  private afterEnqueue(): void {
    if (this.pending.size >= this.opts.maxBatchSize) this.dispatch();
    else this.armDispatchTimer();
  }

  private timeOut(item: Item<I, O>, timeoutMs: number): void {
    item.timer = undefined;
    if (item.settled) return;
    // An undispatched item leaves the queue, so the model never computes it.
    const wasPending = this.pending.delete(item);
    const err = new TimeoutError(timeoutMs, { batcher: this.opts.name, dispatched: !wasPending });
    this.log.warn({ err, dispatched: !wasPending }, 'item timed out');
    this.rejectItem(item, err);
    if (this.pending.size === 0) this.clearDispatchTimer();
    this.checkDrained();
  }

  /** Sends out every batch the rules allow now, then arms the timer for the rest. */
  private dispatch(): void {
    let capped = false;
    while (this.pending.size > 0 && this.inFlight.size < this.opts.numWorkers && this.mayDispatch()) {
      const batch = this.takeBatch();
      if (batch.length === 0) {
        // Every item waiting is over its group's limit: a running batch ends first and dispatches again.
        capped = true;
        break;
      }
      this.launch(batch);
    }
    if (this.pending.size === 0 || capped) this.clearDispatchTimer();
    else this.armDispatchTimer();
  }

  private mayDispatch(): boolean {
    if (this.state === 'stopping' || this.pending.size >= this.opts.maxBatchSize) return true;
    if (this.idleEager()) return true;
    const oldest = this.pending.oldest();
    return oldest !== undefined && now() >= oldest.enqueuedAt + this.opts.batchTimeoutMs;
  }

  /** Eager policy and an idle model: what is pending may go out now. */
  private idleEager(): boolean {
    return this.opts.batchPolicy === 'eager' && this.inFlight.size === 0;
  }

  private takeBatch(): Item<I, O>[] {
    const limit = this.opts.groupLimit;
    const oldest = this.pending.oldest();
    const starved = oldest !== undefined && now() - oldest.enqueuedAt >= this.opts.agingMs;
    if (!limit) return this.pending.take(this.opts.maxBatchSize, undefined, starved);
    const taken = new Map<string, number>();
    const batch = this.pending.take(this.opts.maxBatchSize, (item) => {
      if (item.group === undefined) return true;
      const max = limit(item.group);
      const n = (this.groupRunning.get(item.group) ?? 0) + (taken.get(item.group) ?? 0);
      if (max > 0 && n >= max) return false;
      taken.set(item.group, (taken.get(item.group) ?? 0) + 1);
      return true;
    }, starved);
    for (const [g, n] of taken) this.groupRunning.set(g, (this.groupRunning.get(g) ?? 0) + n);
    return batch;
  }

  /** A batch ended: its items leave their groups' counts. */
  private releaseGroups(batch: readonly Item<I, O>[]): void {
    if (!this.opts.groupLimit) return;
    for (const item of batch) {
      if (item.group === undefined) continue;
      const n = (this.groupRunning.get(item.group) ?? 0) - 1;
      if (n > 0) this.groupRunning.set(item.group, n);
      else this.groupRunning.delete(item.group);
    }
  }

  /** Arms the one dispatch timer for the oldest item's deadline, unless armed or pointless. */
  private armDispatchTimer(): void {
    if (this.cancelDispatchTimer || this.pending.size === 0) return;
    // At the limit, the next dispatch happens when a batch finishes.
    if (this.inFlight.size >= this.opts.numWorkers) return;
    const fire = () => {
      this.cancelDispatchTimer = undefined;
      this.dispatch();
    };
    if (this.opts.batchTimeoutMs === 0 || this.idleEager()) {
      const handle = setImmediate(fire);
      this.cancelDispatchTimer = () => clearImmediate(handle);
      return;
    }
    const oldest = this.pending.oldest() as Item<I, O>;
    // Timers may fire a little early; dispatch() then finds nothing aged and re-arms.
    const delay = Math.max(1, Math.ceil(oldest.enqueuedAt + this.opts.batchTimeoutMs - now()));
    const handle = setTimeout(fire, delay);
    this.cancelDispatchTimer = () => clearTimeout(handle);
  }

  private clearDispatchTimer(): void {
    this.cancelDispatchTimer?.();
    this.cancelDispatchTimer = undefined;
  }

  private launch(batch: Item<I, O>[]): void {
    this.inFlight.add(batch);
    this.totalBatches++;
    this.batchedItems += batch.length;
    this.runBatch(batch).catch((err: unknown) => {
      // runBatch handles every failure itself; this is a last line against a bug.
      this.log.error({ err, batchSize: batch.length }, 'internal error while running a batch');
    });
  }

  private async runBatch(batch: Item<I, O>[]): Promise<void> {
    const started = now();
    let failed = 0;
    try {
      await null; // leave the caller's stack before user code runs
      failed = await this.processAndSettle(batch);
    } finally {
      this.inFlight.delete(batch);
      this.releaseGroups(batch);
      this.reportBatch({ size: batch.length, durationMs: now() - started, failed });
      this.dispatch();
      this.checkDrained();
    }
  }

  /** Calls the processor once and settles every item; returns how many were rejected. */
  private async processAndSettle(batch: Item<I, O>[]): Promise<number> {
    const batchSize = batch.length;
    const outcome = await callModel(this.opts.process, batch.map((item) => item.input), { batcher: this.opts.name, batchSize });
    if (!outcome.ok) {
      const err = outcome.error;
      const why = err.code === ErrorCode.MODEL_OUTPUT_MISMATCH ? 'wrong number of outputs' : 'the processor threw';
      this.log.error({ err, batchSize }, `batch failed: ${why}`);
      for (const item of batch) this.rejectItem(item, err);
      return batchSize;
    }
    let failed = 0;
    outcome.slots.forEach((slot, i) => {
      const item = batch[i] as Item<I, O>;
      if (slot.ok) {
        this.resolveItem(item, slot.output);
        return;
      }
      this.log.error({ err: slot.error, batchSize, index: i }, 'the model returned an error for one item');
      this.rejectItem(item, slot.error);
      failed++;
    });
    return failed;
  }

  private reportBatch(info: BatchInfo): void {
    if (!this.opts.onBatch) return;
    try {
      this.opts.onBatch(info);
    } catch (err) {
      this.log.error({ err, batchSize: info.size }, 'onBatch callback threw; ignored');
    }
  }

  private resolveItem(item: Item<I, O>, value: O): void {
    if (item.settled) return; // timed out or closed meanwhile
    item.settled = true;
    clearTimeout(item.timer);
    item.resolve(value);
  }

  private rejectItem(item: Item<I, O>, err: Error): void {
    if (item.settled) return;
    item.settled = true;
    clearTimeout(item.timer);
    item.reject(err);
  }

  private isDrained(): boolean {
    return this.pending.size === 0 && this.inFlight.size === 0;
  }

  private checkDrained(): void {
    if (this.onDrained && this.isDrained()) this.onDrained();
  }

  private logged<E extends InferqError>(err: E): E {
    this.log.warn({ err }, err.message);
    return err;
  }
}

/**
 * `InferenceOptimizer`: the original specification's single-process facade,
 * with no Redis. `infer()` checks an in-memory LRU cache, lets identical
 * requests in flight share one computation, and otherwise hands the input to
 * a `RequestBatcher` so the model sees batches. `inferBatch()` is one direct
 * model call for callers that already hold a batch.
 *
 * Errors: invalid input rejects with `InputNotSerializableError` before the
 * cache or model is touched; model failures reject with `ModelError` /
 * `ModelOutputMismatchError`, a late request with `TimeoutError`, a request
 * after `close()` with `ClosedError`. Each is logged once where it arises
 * (model failures by the batcher, which sees the batch), then propagates.
 */
import { z } from 'zod';
import { keyInput, type ModelIdentity } from './cache-key.js';
import { canonicalJson } from './canonical-json.js';
import { parseConfig, parseOptimizationConfig, toConfigError, type OptimizationConfig, type OptimizationConfigInput } from './config.js';
import { ClosedError, ErrorCode, InferqError, InputNotSerializableError, TimeoutError } from './errors.js';
import { LatencyHistogram } from './latency-histogram.js';
import { createLogger, type Logger } from './logger.js';
import { MemoryLruCache } from './memory-lru-cache.js';
import { callModel } from './protocol/model-contract.js';
import { RequestBatcher, TimeoutMsSchema, type BatchProcessor } from './request-batcher.js';

/** What `infer()` resolves to. The distributed client extends it. */
export interface InferenceResult<O> {
  output: O;
  /** True when the output came from the cache without a model call. */
  cached: boolean;
  /** Time from the call to the result, in ms. */
  latencyMs: number;
}

/**
 * Per-call options of `infer` (and `inferBatch`, `inferBatchSettled`): the one
 * definition shared by `InferenceOptimizer` and `@inferq/client`'s
 * `InferenceClient`, which re-exports it.
 */
export interface InferOptions {
  /**
   * Read and fill the result cache for this call; the client also shares an
   * identical request already in flight. Default: the client's
   * `config.enableCaching`; `InferenceOptimizer`: true (when caching is enabled).
   */
  useCache?: boolean;
  /**
   * Reject with `TimeoutError` (`INFERQ_TIMEOUT`) after this many ms. Default:
   * the client's `defaultTimeoutMs` (30000; at most 1 h); `InferenceOptimizer`:
   * 30000, `Infinity` = none.
   */
  timeoutMs?: number;
  /**
   * The request's class (`InferenceClient`): `'high'` before `'normal'` before
   * `'low'` when workers choose what to batch; a request that waited the
   * workers' `priorityAgingMs` moves up one class. Default: the client's
   * `priority` (`'normal'`). `InferenceOptimizer` serves in arrival order.
   */
  priority?: 'high' | 'normal' | 'low';
}

export interface InferenceOptimizerOptions<I, O> {
  /** The model: one output (or `Error`) per input, in input order. Required. */
  model: BatchProcessor<I, O>;
  /** Name used in cache keys, logs and errors. Default `'model'`. */
  modelName?: string;
  /** Bump when the weights change so old cache entries stop matching. Default `'1'`. */
  modelVersion?: string;
  /** `OptimizationConfig` fields; defaults as in `OPTIMIZATION_DEFAULTS`. */
  config?: OptimizationConfigInput;
  /** pino logger; default one from `createLogger('optimizer')`. */
  logger?: Logger;
}

export interface OptimizerStats {
  /** `infer()` calls with valid input (`inferBatch` inputs are not requests). */
  totalRequests: number;
  /** Model calls: batcher batches plus `inferBatch` calls. */
  totalBatches: number;
  cacheHits: number;
  cacheMisses: number;
  /** `cacheHits / (cacheHits + cacheMisses)`, 0..1; 0 before any lookup. */
  cacheHitRate: number;
  /** Mean latency of successful `infer()` calls, ms; 0 when none. */
  avgLatencyMs: number;
  /** Inputs per model call; 0 when none. */
  avgBatchSize: number;
  /** Latency percentiles of successful `infer()` calls, ms, from a bucketed histogram (within one bucket). */
  p50LatencyMs: number;
  p95LatencyMs: number;
  p99LatencyMs: number;
}

const OptionsSchema = z
  .object({
    model: z.custom<BatchProcessor<unknown, unknown>>((v) => typeof v === 'function', { message: 'must be a function (inputs) => outputs' }),
    modelName: z.string().min(1).max(200).default('model'),
    modelVersion: z.string().min(1).max(200).optional(),
    config: z.unknown().optional(), // parsed by parseOptimizationConfig, which names its own fields
    logger: z.custom<Logger>((v) => typeof v === 'object' && v !== null && typeof (v as Logger).child === 'function', { message: 'must be a pino logger' }).optional(),
  })
  .strict();

export class InferenceOptimizer<I, O> {
  readonly config: OptimizationConfig;
  readonly modelName: string;
  private readonly model: BatchProcessor<I, O>;
  private readonly identity: ModelIdentity;
  private readonly log: Logger;
  private readonly batcher: RequestBatcher<I, O>;
  /** Absent when caching is disabled. */
  private readonly cache: MemoryLruCache<O> | undefined;
  /** Single-flight: cache key -> the one computation in flight for it. */
  private readonly flights = new Map<string, Promise<O>>();
  /** Bumped by clearCache(), so a computation started before it does not refill the cache. */
  private cacheGeneration = 0;
  private readonly latencies = new LatencyHistogram();
  private latencySumMs = 0;
  private totalRequests = 0;
  private cacheHits = 0;
  private cacheMisses = 0;
  private directBatches = 0;
  private directItems = 0;
  private closing: Promise<void> | undefined;

  constructor(options: InferenceOptimizerOptions<I, O>) {
    const o = parseConfig('InferenceOptimizer', OptionsSchema, options);
    this.config = parseOptimizationConfig(options.config);
    this.model = o.model as BatchProcessor<I, O>;
    this.modelName = o.modelName;
    this.identity = { model: o.modelName, quantization: this.config.quantization };
    if (o.modelVersion !== undefined) this.identity.modelVersion = o.modelVersion;
    this.log = createLogger('optimizer', o.logger).child({ model: o.modelName });
    this.cache = this.config.enableCaching ? new MemoryLruCache<O>(this.config.cacheMaxSize, this.config.cacheMaxBytes) : undefined;
    this.batcher = new RequestBatcher<I, O>({
      process: this.model,
      maxBatchSize: this.config.maxBatchSize,
      batchTimeoutMs: this.config.batchTimeoutMs,
      numWorkers: this.config.numWorkers,
      name: o.modelName,
      logger: this.log,
    }).start();
  }

  /**
   * One inference. With caching on (and `useCache`), a cached output returns
   * at once (`cached: true`), and identical requests in flight share one
   * model computation; that computation is not cancelled when a caller times
   * out, so its result still fills the cache. Without the cache, a request
   * that times out before its batch is dispatched never reaches the model.
   */
  async infer(input: I, options: InferOptions = {}): Promise<InferenceResult<O>> {
    const started = performance.now();
    const key = this.keyOf(input);
    if (this.closing) throw this.logged(new ClosedError(`InferenceOptimizer '${this.modelName}'`));
    const timeoutMs = this.timeoutOf(options.timeoutMs);
    this.totalRequests++;

    let output: O;
    let cached = false;
    if (this.cache && options.useCache !== false) {
      const hit = this.cache.get(key);
      if (hit !== undefined || this.cache.contains(key)) {
        this.cacheHits++;
        output = hit as O;
        cached = true;
      } else {
        this.cacheMisses++;
        output = await this.withTimeout(this.sharedComputation(key, input), timeoutMs);
      }
    } else {
      output = await this.batcher.submit(input, { timeoutMs });
    }
    const latencyMs = performance.now() - started;
    this.latencies.record(latencyMs);
    this.latencySumMs += latencyMs;
    return { output, cached, latencyMs };
  }

  /**
   * One direct model call with all `inputs` (bypasses the batcher and the
   * cache; `maxBatchSize` does not apply). Resolves to one output per input.
   * Rejects with `ModelError` if the model throws, `ModelOutputMismatchError`
   * if it returns the wrong number of outputs, and with the error of the
   * first failed slot if any slot holds an `Error` (all or nothing: use
   * `infer()` for per-item results). An empty list resolves to `[]` without
   * a model call.
   */
  async inferBatch(inputs: readonly I[]): Promise<O[]> {
    inputs.forEach((input, index) => this.checkSerialisable(input, index));
    if (this.closing) throw this.logged(new ClosedError(`InferenceOptimizer '${this.modelName}'`));
    if (inputs.length === 0) return [];
    this.directBatches++;
    this.directItems += inputs.length;
    const details = { model: this.modelName, batchSize: inputs.length, direct: true };
    const outcome = await callModel(this.model, [...inputs], details);
    if (!outcome.ok) {
      const mismatch = outcome.error.code === ErrorCode.MODEL_OUTPUT_MISMATCH;
      throw this.logged(outcome.error, mismatch ? 'inferBatch failed' : 'inferBatch failed: the model threw', 'error');
    }
    const outputs: O[] = [];
    for (const slot of outcome.slots) {
      // All or nothing: the first failed slot rejects the call.
      if (!slot.ok) throw this.logged(slot.error, 'inferBatch failed: the model returned an error', 'error');
      outputs.push(slot.output);
    }
    return outputs;
  }

  get stats(): OptimizerStats {
    const b = this.batcher.stats;
    const batches = b.totalBatches + this.directBatches;
    const items = b.batchedItems + this.directItems;
    const completed = this.latencies.count;
    const lookups = this.cacheHits + this.cacheMisses;
    return {
      totalRequests: this.totalRequests,
      totalBatches: batches,
      cacheHits: this.cacheHits,
      cacheMisses: this.cacheMisses,
      cacheHitRate: lookups === 0 ? 0 : this.cacheHits / lookups,
      avgLatencyMs: completed === 0 ? 0 : this.latencySumMs / completed,
      avgBatchSize: batches === 0 ? 0 : items / batches,
      p50LatencyMs: this.latencies.percentile(50),
      p95LatencyMs: this.latencies.percentile(95),
      p99LatencyMs: this.latencies.percentile(99),
    };
  }

  /** Empties the cache; computations in flight do not refill it. */
  clearCache(): void {
    this.cacheGeneration++;
    this.cache?.clear();
  }

  /** Stops accepting requests and stops the batcher gracefully (pending items still run). Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.batcher.stop();
    return this.closing;
  }

  /** The one computation for `key`, started now or joined. */
  private sharedComputation(key: string, input: I): Promise<O> {
    const inFlight = this.flights.get(key);
    if (inFlight) return inFlight;
    const generation = this.cacheGeneration;
    // No timeout here: each caller applies its own in withTimeout().
    const computation = this.batcher.submitAsync(input);
    this.flights.set(key, computation);
    computation
      .then(
        (output) => {
          if (generation === this.cacheGeneration) this.cache?.put(key, output);
        },
        () => undefined, // the callers receive (and the batcher has logged) the error
      )
      .finally(() => this.flights.delete(key));
    return computation;
  }

  private withTimeout(promise: Promise<O>, timeoutMs: number): Promise<O> {
    if (timeoutMs === Infinity) return promise;
    return new Promise<O>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(this.logged(new TimeoutError(timeoutMs, { model: this.modelName }), 'request timed out'));
      }, timeoutMs);
      promise.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  private keyOf(input: I): string {
    try {
      return keyInput(this.identity, input).key;
    } catch (err) {
      throw this.logged(asInferqError(err), 'input rejected');
    }
  }

  private checkSerialisable(input: I, index: number): void {
    try {
      canonicalJson(input);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw this.logged(new InputNotSerializableError(`inputs[${index}]: ${message}`, { cause: err, details: { index } }), 'input rejected');
    }
  }

  private timeoutOf(value: number | undefined): number {
    if (value === undefined) return this.batcher.options.defaultTimeoutMs;
    const parsed = TimeoutMsSchema.safeParse(value);
    if (!parsed.success) throw this.logged(toConfigError('InferenceOptimizer.infer', parsed.error, { '(root)': 'timeoutMs' }));
    return parsed.data;
  }

  private logged<E extends InferqError>(err: E, msg: string = err.message, level: 'warn' | 'error' = 'warn'): E {
    this.log[level]({ err }, msg);
    return err;
  }
}

function asInferqError(err: unknown): InferqError {
  if (err instanceof InferqError) return err;
  return new InputNotSerializableError(err instanceof Error ? err.message : String(err), { cause: err });
}

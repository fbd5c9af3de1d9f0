/**
 * What a worker does with one batch of request items (the RequestBatcher's
 * processor), in order:
 *  1. one read for every cached item (`openBatch`): a late cache hit (another
 *     worker may have filled it since the client looked), or the latest
 *     deadline of everyone waiting on the item's flight; and Redis time;
 *  2. drop items whose every caller stopped waiting, unrun — deadlines are
 *     compared on Redis time, never on this machine's clock;
 *  3. call the model ONCE on the remaining distinct inputs, under the model
 *     contract (`ModelRunner`: a throw is narrowed down to the inputs that
 *     cause it; a call past `modelTimeoutMs` makes its items retryable);
 *  4. in ONE pipeline: the settle script (cache writes, each outcome to its
 *     client's inbox and to the waiters of its flight, each item at most once
 *     per job) and the batch's stats.
 * Model failures are outcomes too: delivered to the callers, logged, and the
 * item counts as done. `run` returns as soon as the pipeline is sent; the
 * batch's `delivered` promise rejects only if delivery itself failed (Redis),
 * so that its jobs are retried.
 */
import type { ChainableCommander } from 'ioredis';
import type { RedisClient } from '@inferq/core';
import {
  DeadlineExceededError,
  ErrorCode,
  InferqError,
  ProtocolError,
  RedisUnavailableError,
  canonicalJson,
  type Logger,
  type OptimizationConfig,
  type StatsRecorder,
} from '@inferq/core';
import {
  appendSettle,
  failurePayload,
  openBatch,
  settleReplies,
  successPayload,
  type SettleCall,
  type SettleOptions,
  type WaiterClients,
  type EnvelopeItem,
  type ItemInput,
  type ModelKeys,
  type OpenedItem,
  type RedisClock,
  type SettleItem,
} from '@inferq/core/protocol';
import type { GroupResult, ModelRun, ModelRunner } from './model-runner.js';
import { recordHangs } from './hang-record.js';
import { BatchTrace } from './batch-tracing.js';
import { modelInput } from './item-input.js';

/** A request item as a worker holds it: with the client that waits, the job that carried it and that job's queue shard. */
export interface WorkItem {
  id: string;
  /** Canonical JSON text, or the numbers of a compact input (item-input.ts). */
  input: ItemInput;
  deadline: number;
  index: number;
  /** Every field always present (undefined when absent): one object shape for every item, which V8 handles fastest. */
  key: string | undefined;
  q: 1 | undefined;
  client: string;
  /** The client's tenant: whose place in the queue ledger the item holds (with `q`). */
  tenant: string;
  jobId: string;
  shard: number;
  /** The request span's context (docs/tracing.md): what the batch span links. */
  t: Record<string, string> | undefined;
  /** When its job was enqueued (BullMQ's `job.timestamp`, epoch ms): the start of its queue wait. */
  enqueuedAt: number;
}

/**
 * What settles a work item: its outcome to its client, once per job; with its
 * cache key its flight closes and its waiters get the same outcome; a
 * `cacheValue` is cached (absent: nothing is).
 */
export function settleItem(item: WorkItem, payload: string, cacheValue?: string): SettleItem {
  const s: SettleItem = { requestId: item.id, client: item.client, job: { id: item.jobId, index: item.index }, payload };
  if (item.key !== undefined) s.cacheKey = item.key;
  // Its place in the queue ledger goes back in the settle that answers it, once (the done bit).
  if (item.q === 1) {
    s.counted = true;
    s.tenant = item.tenant;
  }
  if (cacheValue !== undefined) s.cacheValue = cacheValue;
  return s;
}

/** A decoded envelope item as the worker holds it (built field by field: an object spread here cost ~7 % of a worker's CPU). */
export function workItem(it: EnvelopeItem, client: string, tenant: string, jobId: string, shard: number, enqueuedAt: number): WorkItem {
  return { id: it.id, input: it.input, deadline: it.deadline, index: it.index, key: it.key, q: it.q, client, tenant, jobId, shard, t: it.t, enqueuedAt };
}

export interface BatchPipelineOptions {
  redis: RedisClient;
  /** Keys of each queue shard; an item's results are settled in its shard. */
  shards: readonly ModelKeys[];
  /**
   * One pipeline per shard (a Redis Cluster routes a pipeline whole to one
   * node), the stats on their own unless the shard shares the model's tag.
   * On a single Redis everything goes in one pipeline.
   */
  perShardPipelines: boolean;
  /** Clients seen waiting on flights, declared to every settle. */
  waiters: WaiterClients;
  /** Calls the model (timeout, poison isolation). */
  runner: ModelRunner;
  modelName: string;
  clock: RedisClock;
  stats: StatsRecorder;
  config: OptimizationConfig;
  workerId: string;
  /** Cache bounds (this shard's part) and TTLs of every settle. */
  settle: SettleOptions;
  /** Largest output sent or cached, in bytes of its JSON. */
  maxOutputBytes: number;
  /** The model takes compact inputs as Float64Array (ModelModule.typedInputs). */
  typedInputs?: boolean;
  logger: Logger;
  /** Told about each batch once its results reached Redis (or failed to); for metrics. Its throw is logged, never propagated. */
  onBatch?: ((report: BatchReport) => void) | undefined;
}

/**
 * What one batch did, as its worker saw it (`InferenceWorkerOptions.onBatch`):
 * every item is counted once, in `ok`, `cacheHits`, `errors` or `retried`.
 */
export interface BatchReport {
  /** Request items the batch was handed. */
  items: number;
  /** Distinct inputs the model computed: the model call's batch size (0: no model call). */
  computed: number;
  /** Time of the model call(s), ms (0 when none). */
  modelMs: number;
  /** Items answered with a model output. */
  ok: number;
  /** Items answered from the cache at batch time (another worker filled it since the client looked). */
  cacheHits: number;
  /** Items answered with an error, by error code (`INFERQ_MODEL_FAILED`, `INFERQ_DEADLINE_EXCEEDED`, ...). */
  errors: Record<string, number>;
  /** Items whose model call timed out: not answered here, their jobs are retried. */
  retried: number;
  /** Extra model calls made to isolate inputs that made the model throw. */
  extraCalls: number;
  /** Model calls past `modelTimeoutMs`. */
  modelTimeouts: number;
  /** Waiters of the batch's flights (identical requests of other callers, single-flight joins) answered with it. */
  flightWaiters: number;
  /** Whether the results reached Redis (false: delivery failed and the jobs are retried). */
  delivered: boolean;
}

/** What a batch gives each of its items: settles once the item's outcome reached Redis (rejects if it did not). */
export interface BatchOutcome {
  delivered: Promise<void>;
}

interface Group {
  input: unknown;
  items: WorkItem[];
  /** Latest deadline of anyone waiting on its items (Redis epoch ms). */
  deadline: number;
}

/** What isolating a batch's hung inputs did. */
interface HangIsolation {
  /** Group indices tried again later (their jobs fail now and are retried). */
  retry: number[];
  retryError: InferqError | undefined;
  ms: number;
  calls: number;
  timeouts: number;
}

/** Calls past modelTimeoutMs an input may be in, at least one of them alone, before it is answered INFERQ_MODEL_TIMEOUT. */
export const HANG_TRIES = 2;

export class BatchPipeline {
  constructor(private readonly o: BatchPipelineOptions) {}

  /**
   * `call`: computes the batch's outputs instead of the runner (crash isolation answers an input
   * with what a fresh probe process computed); every other step is the same.
   */
  async run(items: readonly WorkItem[], call?: (inputs: unknown[]) => Promise<ModelRun>): Promise<BatchOutcome[]> {
    // Its spans (batch-tracing.ts): ended by the settle once delivered, or here if a step threw.
    const trace = new BatchTrace(this.o.modelName, this.o.workerId, items);
    try {
      return await this.runTraced(items, trace, call);
    } catch (err) {
      trace.end(err);
      throw err;
    }
  }

  private async runTraced(items: readonly WorkItem[], trace: BatchTrace, call?: (inputs: unknown[]) => Promise<ModelRun>): Promise<BatchOutcome[]> {
    const { o } = this;
    const settles: SettleItem[][] = o.shards.map(() => []);
    const settle = (item: WorkItem, payload: string, cacheValue?: string) => {
      (settles[item.shard] as SettleItem[]).push(settleItem(item, payload, cacheValue));
    };
    const errorCodes: Record<string, number> = {};
    const fail = (item: WorkItem, err: InferqError) => {
      errorCodes[err.code] = (errorCodes[err.code] ?? 0) + 1;
      settle(item, failurePayload(err, o.workerId));
    };

    // 1. late cache hits and flight deadlines, on Redis time
    const opened = await trace.step('inferq.cache_lookup', () => this.open(items));
    const now = opened.now;
    let workerCacheHits = 0;
    let deadlineDrops = 0;
    let errors = 0;
    const live: WorkItem[] = [];
    const deadlines = new Map<WorkItem, number>();
    items.forEach((item, i) => {
      const seen = opened.items[i];
      if (seen?.hit) {
        workerCacheHits++;
        settle(item, successPayload(seen.valueJson, o.workerId, 0, true));
        return;
      }
      // 2. deadlines: the item lives while anyone waiting on its flight does
      const deadline = Math.max(item.deadline, seen?.deadline ?? 0);
      if (deadline <= now) {
        deadlineDrops++;
        fail(item, new DeadlineExceededError(`Request ${item.id} waited past its deadline before a worker took it; dropped unrun.`, { requestId: item.id }));
        return;
      }
      deadlines.set(item, deadline);
      live.push(item);
    });

    // identical inputs of one batch are computed once
    const groups: Group[] = [];
    const byKey = new Map<string, Group>();
    for (const item of live) {
      const existing = item.key !== undefined ? byKey.get(item.key) : undefined;
      if (existing) {
        existing.items.push(item);
        existing.deadline = Math.max(existing.deadline, deadlines.get(item) ?? item.deadline);
        continue;
      }
      let input: unknown;
      try {
        input = modelInput(item.input, o.typedInputs === true);
      } catch (cause) {
        const err = new ProtocolError(`Request ${item.id} carries an input that is not JSON text.`, { cause });
        o.logger.error({ err, requestId: item.id, jobId: item.jobId }, 'malformed request item');
        fail(item, err);
        errors++;
        continue;
      }
      const g: Group = { input, items: [item], deadline: deadlines.get(item) ?? item.deadline };
      groups.push(g);
      if (item.key !== undefined) byKey.set(item.key, g);
    }

    // 3. one model call (more only to isolate the inputs that make it throw or hang)
    let modelMs = 0;
    let extraCalls = 0;
    let timeouts = 0;
    /** Items whose input hung and may be tried again (alone): not settled; their jobs fail and are retried. */
    const retry: WorkItem[] = [];
    let retryError: InferqError | undefined;
    if (groups.length > 0) {
      const batchSize = groups.length;
      const context = () => ({ model: o.modelName, worker: o.workerId, batchSize, jobIds: [...new Set(groups.flatMap((g) => g.items.map((i) => i.jobId)))] });
      const runOptions = { deadlines: groups.map((g) => g.deadline), now: () => o.clock.now() };
      const ran = await trace.step('inferq.model', () => (call ? call(groups.map((g) => g.input)) : o.runner.run(groups.map((g) => g.input), runOptions)));
      modelMs = ran.ms;
      extraCalls = ran.extraCalls;
      timeouts = ran.timeouts;
      const results = ran.results;
      if (extraCalls > 0) o.logger.warn({ ...context(), extraCalls, overBudget: ran.overBudget }, 'the model threw on this batch; split it to fail only the inputs that make it throw');
      if (ran.refused > 0) {
        o.logger.error({ ...context(), refused: ran.refused }, "the model failed every one of this worker's last calls (circuit breaker open); answering INFERQ_MODEL_UNAVAILABLE without calling it");
      }
      // Hangs are isolated like crashes: see isolateHangs.
      const hung = groups.map((_, i) => i).filter((i) => (results[i] as GroupResult | undefined)?.ok === false && (results[i] as { timedOut?: boolean }).timedOut === true);
      if (hung.length > 0) {
        const iso = await trace.step('inferq.model', () => this.isolateHangs(groups, hung, results, runOptions, context()));
        modelMs += iso.ms;
        extraCalls += iso.calls;
        timeouts += iso.timeouts;
        for (const gi of iso.retry) retry.push(...(groups[gi] as Group).items);
        retryError = iso.retryError;
      }
      const unavailable = new Set<InferqError>();
      groups.forEach((g, idx) => {
        const r = results[idx];
        let json: string | undefined;
        let err: InferqError | undefined;
        if (r?.ok) {
          try {
            json = canonicalJson(r.output, { maxBytes: o.maxOutputBytes });
          } catch (cause) {
            err =
              (cause as InferqError).code === ErrorCode.INPUT_TOO_LARGE
                ? new InferqError(ErrorCode.OUTPUT_TOO_LARGE, `The model's output for this input is larger than maxOutputBytes (${o.maxOutputBytes} bytes as JSON).`, { cause })
                : new InferqError(ErrorCode.OUTPUT_NOT_SERIALIZABLE, `The model's output for this input is not JSON-serialisable: ${(cause as Error).message}`, { cause });
          }
        } else if (r && r.retryable) {
          return; // tried again (isolateHangs put it in `retry`)
        } else err = r?.error;
        if (json === undefined) {
          const e = err ?? new InferqError(ErrorCode.MODEL_FAILED, 'The model gave no output for this input.');
          // One log line per batch for a refusal (logged above), one per input for the rest.
          if (e.code !== ErrorCode.MODEL_UNAVAILABLE) o.logger.error({ err: e, ...context(), requestIds: g.items.map((i) => i.id) }, 'model failed for this input');
          else unavailable.add(e);
          for (const item of g.items) fail(item, e);
          errors += g.items.length;
          return;
        }
        const payload = successPayload(json, o.workerId, batchSize, false);
        const cacheable = o.config.enableCaching;
        g.items.forEach((item, n) => settle(item, payload, n === 0 && cacheable && item.key !== undefined ? json : undefined));
      });
    }

    // 4. one pipeline (one per shard on a cluster): settle (with the queue ledger) + stats
    trace.settling();
    const settleOptions = o.settle;
    const retrying = new Set(retry);
    const waiters = o.waiters.list();
    const shared = o.perShardPipelines ? undefined : o.redis.pipeline();
    /** Each shard's settle calls, where they start in their pipeline, and that pipeline's replies. */
    const sends: Array<{ shard: number; calls: SettleCall[]; from: number; executed?: Promise<[Error | null, unknown][] | null> }> = [];
    o.shards.forEach((keys, shard) => {
      const items_ = settles[shard] as SettleItem[];
      if (items_.length === 0) return;
      const pipeline = shared ?? o.redis.pipeline();
      const from = pipelineLength(pipeline);
      const calls = appendSettle(pipeline, keys, items_, settleOptions, waiters);
      sends.push({ shard, calls, from, ...(shared ? {} : { executed: pipeline.exec() }) });
    });
    const statsPipeline = shared ?? o.redis.pipeline();
    const statsFrom = pipelineLength(statsPipeline);
    o.stats.appendTo(statsPipeline, {
      batches: groups.length > 0 ? 1 : 0,
      batch_items: groups.length,
      worker_cache_hits: workerCacheHits,
      errors,
      deadline_drops: deadlineDrops,
      poison_splits: extraCalls,
      model_timeouts: timeouts,
      model_time_sum_ms: modelMs,
    });
    // Not awaited here: the batch's model slot is free as soon as the model
    // returned, so the next batch computes while this one's results travel
    // (no round-trip bubble between model calls). Callers await `delivered`.
    const sharedExec = shared?.exec();
    const statsExec = shared ? sharedExec : statsPipeline.exec();
    const deliveries = sends.map(async (send) => {
      const results = await (send.executed ?? sharedExec);
      if (!results) throw new Error('pipeline was not executed');
      const end = send.from + send.calls.length;
      const replies = await settleReplies(o.redis, o.shards[send.shard] as ModelKeys, send.calls, results.slice(send.from, end), settleOptions, o.waiters);
      return replies.reduce((n, r) => n + r.served, 0);
    });
    const delivered = Promise.all(deliveries)
      .then((served) => served.reduce((a, b) => a + b, 0))
      .catch((cause: unknown) => {
        const total = settles.reduce((n, list) => n + list.length, 0);
        const err = new RedisUnavailableError(`Delivering ${total} results failed: ${(cause as Error).message}`, { cause });
        o.logger.error({ err, model: o.modelName, worker: o.workerId, items: items.length }, 'delivering batch results failed; the jobs will be retried');
        throw err;
      });
    void statsExec?.then(
      (results) => {
        // The stats commands are the pipeline's last ones; a failed one must not count as a failed delivery.
        const statsFailed = results?.slice(statsFrom).find(([err]) => err);
        if (statsFailed) o.logger.warn({ err: statsFailed[0], model: o.modelName }, 'recording batch stats failed (results were delivered)');
      },
      () => undefined, // a failed shared pipeline is reported by `delivered`
    );
    // Handled by whoever awaits it; this only keeps an unawaited failure from being "unhandled".
    delivered.catch(() => undefined);
    trace.settled(delivered, workerCacheHits);
    if (o.onBatch) {
      const failedItems = Object.values(errorCodes).reduce((a, b) => a + b, 0);
      reportBatch(o, delivered, {
        items: items.length,
        computed: groups.length,
        modelMs,
        ok: items.length - workerCacheHits - failedItems - retry.length,
        cacheHits: workerCacheHits,
        errors: errorCodes,
        retried: retry.length,
        extraCalls,
        modelTimeouts: timeouts,
      });
    }
    const outcome: BatchOutcome = { delivered: delivered.then(() => undefined) };
    // Whoever holds the outcome may be gone (a stopping worker's jobs): a failed delivery is logged
    // above, and must never become an unhandled rejection that kills a process embedding the worker.
    outcome.delivered.catch(() => undefined);
    if (retry.length === 0) return items.map(() => outcome);
    // Timed out: these items' jobs fail now and are retried, elsewhere when this worker is stuck.
    const retried = Promise.reject(retryError as InferqError);
    retried.catch(() => undefined);
    return items.map((item) => (retrying.has(item) ? { delivered: retried } : outcome));
  }

  /**
   * Hangs are isolated like crashes (docs/failure-modes.md). Every item of a
   * hung call gets one more hung call in its job's hang record (Redis: the
   * next try may be on another worker). Then:
   * - an input alone in its call (a batch of one) is answered
   *   INFERQ_MODEL_TIMEOUT once it has been in HANG_TRIES (2) hung calls;
   *   before that its job is retried, and the retry runs it alone;
   * - the inputs of a hung call with others are run again here, one at a
   *   time, each alone (a batch of one: the clean ones are answered with
   *   their outputs); the one that hangs alone has been in 2 hung calls and
   *   is answered INFERQ_MODEL_TIMEOUT. If a SECOND input hangs alone in the
   *   same round, the model (or this worker) looks wedged rather than the
   *   inputs guilty: nothing more is tried here, and the inputs left go back
   *   to be tried alone again (on any worker; answered at their next hang).
   * Each try of a hung input holds a model slot until the model returns
   * (maybe never): tries are what a hang costs, so they are few.
   */
  private async isolateHangs(groups: readonly Group[], hung: readonly number[], results: GroupResult[], runOptions: { now: () => number }, context: Record<string, unknown>): Promise<HangIsolation> {
    const { o } = this;
    const out: HangIsolation = { retry: [], retryError: undefined, ms: 0, calls: 0, timeouts: 0 };
    const record = (gis: readonly number[]) =>
      recordHangs(o.redis, o.shards, gis.flatMap((gi) => (groups[gi] as Group).items), o.settle.doneTtlMs).catch((err: unknown) => {
        o.logger.warn({ err, ...context }, 'recording hung model calls failed; the inputs are merely tried again');
        return new Map<WorkItem, number>();
      });
    const triesOf = (counts: Map<WorkItem, number>, gi: number) => Math.max(0, ...(groups[gi] as Group).items.map((it) => counts.get(it) ?? 0));
    const answer = (gi: number, tries: number) => {
      const g = groups[gi] as Group;
      const err = new InferqError(
        ErrorCode.MODEL_TIMEOUT,
        `The model did not return within modelTimeoutMs (${o.runner.timeoutMs} ms) for this input, alone in the model; it was in ${tries} calls past the timeout and is not tried again.`,
        { details: { model: o.modelName, tries } },
      );
      o.logger.error({ err, ...context, requestIds: g.items.map((i) => i.id), jobIds: [...new Set(g.items.map((i) => i.jobId))], tries }, 'this input hangs the model alone; answering INFERQ_MODEL_TIMEOUT');
      results[gi] = { ok: false, error: err, retryable: false };
    };
    const again = (gis: readonly number[], why: string) => {
      if (gis.length === 0) return;
      out.retry.push(...gis);
      out.retryError = new InferqError(ErrorCode.MODEL_TIMEOUT, `The model did not return within modelTimeoutMs (${o.runner.timeoutMs} ms); ${why}`, { details: { model: o.modelName } });
      o.logger.warn({ ...context, requestIds: gis.flatMap((gi) => (groups[gi] as Group).items.map((i) => i.id)) }, `hung inputs: ${why}`);
    };
    const counts = await record(hung);
    if (groups.length === 1) {
      // Alone in its call already.
      const tries = triesOf(counts, 0);
      if (tries >= HANG_TRIES) answer(0, tries);
      else again([0], 'its job is retried, and the retry runs it alone.');
      return out;
    }
    o.logger.warn({ ...context, hung: hung.length }, 'a model call passed modelTimeoutMs; running its inputs again one at a time, each alone');
    const aloneHung: number[] = [];
    const left: number[] = [];
    for (const gi of hung) {
      if (aloneHung.length >= 2) {
        left.push(gi);
        continue;
      }
      const g = groups[gi] as Group;
      if (g.deadline <= runOptions.now()) {
        results[gi] = { ok: false, error: new DeadlineExceededError('The request waited past its deadline while a hung batch was isolated; dropped unrun.', { model: o.modelName }), retryable: false };
        continue;
      }
      const ran = await o.runner.run([g.input], { deadlines: [g.deadline], now: runOptions.now });
      out.ms += ran.ms;
      out.calls++;
      out.timeouts += ran.timeouts;
      const r = ran.results[0] as GroupResult;
      if (!r.ok && r.timedOut) aloneHung.push(gi);
      else results[gi] = r;
    }
    const aloneCounts = await record(aloneHung);
    if (aloneHung.length === 1 && left.length === 0) {
      const gi = aloneHung[0] as number;
      answer(gi, Math.max(HANG_TRIES, triesOf(aloneCounts, gi)));
    } else {
      again([...aloneHung, ...left], 'more than one input hung alone in one round (the model may be wedged); they are tried again alone, on any worker.');
    }
    return out;
  }

  /** Step 1: one script call per shard for the items that own flights; Redis time from it, or from the clock. */
  private async open(items: readonly WorkItem[]): Promise<{ now: number; items: Array<OpenedItem | undefined> }> {
    const { o } = this;
    const byShard = new Map<number, Array<{ i: number; id: string; key: string }>>();
    items.forEach((it, i) => {
      if (it.key === undefined) return;
      let list = byShard.get(it.shard);
      if (!list) byShard.set(it.shard, (list = []));
      list.push({ i, id: it.id, key: it.key });
    });
    const seen: Array<OpenedItem | undefined> = items.map(() => undefined);
    if (byShard.size === 0) return { now: o.clock.now(), items: seen };
    const sentAt = Date.now();
    let now: number | undefined;
    await Promise.all(
      [...byShard].map(async ([shard, keyed]) => {
        try {
          const opened = await openBatch(o.redis, o.shards[shard] as ModelKeys, keyed);
          if (now === undefined) {
            o.clock.observe(opened.now, sentAt, Date.now());
            now = opened.now;
          }
          keyed.forEach((k, j) => {
            const r = opened.items[j];
            // A worker with caching off still honours flights (their deadlines) but never serves the cache.
            seen[k.i] = r?.hit && !o.config.enableCaching ? undefined : r;
          });
        } catch (err) {
          o.logger.error({ err, model: o.modelName, shard, items: keyed.length }, 'batch cache read failed; computing instead');
        }
      }),
    );
    return { now: now ?? o.clock.now(), items: seen };
  }
}

/** Commands queued on an ioredis pipeline so far (its `length`, absent from the public type). */
function pipelineLength(pipeline: ChainableCommander): number {
  return (pipeline as unknown as { length: number }).length;
}

/**
 * Tells `o.onBatch` about a batch once its results were delivered (or not),
 * with the flight waiters the settle script answered. Off the batch's path:
 * nothing here delays or fails a delivery.
 */
function reportBatch(o: BatchPipelineOptions, delivered: Promise<number>, report: Omit<BatchReport, 'flightWaiters' | 'delivered'>): void {
  void delivered.then(
    (flightWaiters) => tell(o, { ...report, flightWaiters, delivered: true }),
    () => tell(o, { ...report, flightWaiters: 0, delivered: false }),
  );
}

function tell(o: BatchPipelineOptions, report: BatchReport): void {
  try {
    o.onBatch?.(report);
  } catch (err) {
    o.logger.warn({ err, model: o.modelName }, 'the onBatch observer threw');
  }
}

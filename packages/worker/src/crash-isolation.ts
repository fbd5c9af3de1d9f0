/**
 * Crash isolation: an input that makes the worker PROCESS die (the model
 * calls `process.exit`, aborts, or crashes natively) fails alone with
 * INFERQ_MODEL_CRASHED, and the rest of its envelope is answered.
 *
 * Conviction needs proof (docs/failure-modes.md): a death with an input
 * alone in a worker's model may be the doing of latent state another input
 * left there (input A corrupts the model, the next call dies, whatever it
 * is). So an input seen in such a death is not run in a worker again: it is
 * run in a crash probe (crash-probe.ts), a FRESH process whose first and
 * only model call it is. If the probe dies, that is a proven kill (`f<index>`
 * in the record); an input is convicted once it has `maxCrashes` deaths
 * alone in all, at least one of them proven. If the probe answers, its
 * callers get that answer (computed in a clean process) and nothing is
 * convicted. Without a probe (an embedded worker given `run` rather than a
 * module path), a death counts as proven only when the input was the
 * process's first model call; until then the input is retried alone.
 *
 * Nothing of this runs on the ordinary path. A job that BullMQ re-runs after
 * a stall (`job.stalledCounter > 0`: a worker died holding it, or lost its
 * lock) is suspect, and its items not yet settled (done bitmap) run here,
 * one model call per item, each alone in this process's model (`ModelGate`).
 * Before each call the worker adds 1 to the item's field in the job's crash
 * record (`crash:<job id>`, a hash: envelope index -> calls that never
 * returned) and takes it back when the call returns; so a field counts the
 * times the worker died while that input was alone in the model. A re-run
 * answers an item whose count reached `maxCrashes` (and any item of the job
 * with the very same input) with ModelCrashedError through the ordinary
 * settle — its flight's waiters get it too, nothing is cached, its queue room
 * goes back — and runs the others alone again, those already seen in a crash
 * last.
 *
 * One input per call, not bisection: a crash costs a process restart plus up
 * to `lockDurationMs + stalledIntervalMs` before BullMQ sees the stall (a
 * minute at the defaults), a model call alone costs milliseconds; one input
 * per call makes each crash convict exactly one input, so a crashing input is
 * answered after 1 + maxCrashes crashes whatever the envelope's size.
 */
import { ErrorCode, InferqError, ModelCrashedError, isErrorCode, type Logger, type ModelKeys, type RedisClient, type StatsRecorder } from '@inferq/core';
import {
  appendSettle,
  itemInputJson,
  failurePayload,
  settleReplies,
  type SettleItem,
  type SettleOptions,
  type WaiterClients,
} from '@inferq/core/protocol';
import { settleItem, type BatchOutcome, type BatchPipeline, type BatchReport, type WorkItem } from './batch-pipeline.js';
import type { ModelGate } from './model-gate.js';
import type { ConvictedInputs } from './convicted-inputs.js';
import type { ProbeResult } from './crash-probe.js';
import type { ModelRun } from './model-runner.js';

/** Field of an item's proven kills (fresh process, first call) in its job's crash record. */
export function provenField(index: number): string {
  return `f${index}`;
}

/**
 * BullMQ's `maxStalledCount` for a given `maxCrashes`: how often a job may
 * stall before BullMQ fails it whole (INFERQ_JOB_LOST). One crashing input
 * stalls its job 1 + maxCrashes times (once in its ordinary batch, then
 * maxCrashes times alone); 1 + 2·maxCrashes leaves room for a second one
 * among the jobs a worker holds at once (its crashes stall every job held).
 * It stays a bound: a worker that dies outside any isolated call (nothing to
 * convict) does not loop for ever. 0 (isolation off): BullMQ's default, 1.
 */
export function maxStalledCountFor(maxCrashes: number): number {
  return maxCrashes > 0 ? 1 + 2 * maxCrashes : 1;
}

export interface CrashIsolationOptions {
  redis: RedisClient;
  /** Each queue shard's keys: a job's crash record and settles live in its shard. */
  shards: readonly ModelKeys[];
  /** Clients seen waiting on flights, declared to every settle. */
  waiters: WaiterClients;
  /** Crashes alone in the model after which an input is answered INFERQ_MODEL_CRASHED (>= 1). */
  maxCrashes: number;
  /** The batch pipeline: each isolated item runs through it as a batch of one. */
  pipeline: BatchPipeline;
  gate: ModelGate;
  /** The fleet's memory of convicted inputs: written on each conviction, checked before each job's batch. */
  convicted: ConvictedInputs;
  stats: StatsRecorder;
  /** How results are settled; its `doneTtlMs` is also the TTL of a job's crash record (longer than a job can be re-run). */
  settle: SettleOptions;
  workerId: string;
  logger: Logger;
  onBatch?: ((report: BatchReport) => void) | undefined;
  /** Runs one input in a fresh process (crash-probe.ts); absent: a death is proven only as a process's first model call. */
  probe?: ((inputJson: string) => Promise<ProbeResult>) | undefined;
  /** Whether no model call started in this process yet (its next call is its first). */
  fresh: () => boolean;
}

export class CrashIsolation {
  /** Crash record fields raised for calls in flight (key -> fields): taken back by a worker that leaves on purpose. */
  private readonly inFlight = new Map<string, string[]>();

  constructor(private readonly o: CrashIsolationOptions) {}

  /** Takes back the records of isolated calls in flight: the worker leaves on purpose (every slot stuck), no input killed it. */
  async releaseRecords(): Promise<void> {
    const entries = [...this.inFlight];
    this.inFlight.clear();
    if (entries.length === 0) return;
    const pipeline = this.o.redis.pipeline();
    for (const [key, fields] of entries) for (const f of fields) pipeline.hincrby(key, f, -1);
    await pipeline.exec().catch((err: unknown) => this.o.logger.warn({ err, records: entries.length }, 'taking back crash records failed; they may count a death that was not'));
  }

  /**
   * Runs the unsettled items of a job re-run after a stall. Resolves once
   * every item's outcome reached Redis; rejects (the job is retried) if one
   * did not.
   */
  async run(jobId: string, stalledCounter: number, items: readonly WorkItem[], shard: number): Promise<void> {
    const { o } = this;
    const keys = o.shards[shard] as ModelKeys;
    const key = keys.jobCrashes(jobId);
    const record = await o.redis.hgetall(key);
    const crashes = (item: WorkItem) => Number(record[String(item.index)] ?? 0) || 0;
    const proven = (item: WorkItem) => Number(record[provenField(item.index)] ?? 0) || 0;
    // Convicted: maxCrashes deaths alone in the model, at least one proven; and the same input elsewhere in the job.
    const convictedInputs = new Map<string, number>();
    const guilty = (item: WorkItem) => proven(item) >= 1 && crashes(item) >= o.maxCrashes;
    // By canonical JSON text: a compact input is the same input as its text.
    const text = (item: WorkItem) => itemInputJson(item.input);
    for (const item of items) if (guilty(item)) convictedInputs.set(text(item), Math.max(crashes(item), convictedInputs.get(text(item)) ?? 0));
    const convicted = items.filter((item) => convictedInputs.has(text(item)));
    const rest = items.filter((item) => !convictedInputs.has(text(item)));
    for (const item of rest) {
      const n = crashes(item);
      if (n > 0) {
        o.logger.warn(
          { jobId, index: item.index, requestId: item.id, client: item.client, cacheKey: item.key, crashes: n, maxCrashes: o.maxCrashes, stalledCounter },
          'a worker died while this input was alone in the model; running it alone again, after the others',
        );
      }
    }
    if (convicted.length > 0) {
      const crashesOf = (item: WorkItem) => convictedInputs.get(text(item)) ?? o.maxCrashes;
      // Remembered by every worker first: the same input in a later job is answered at once.
      await o.convicted
        .convict(convicted.map((item) => ({ item, crashes: crashesOf(item) })))
        .catch((err: unknown) => o.logger.error({ err, jobId, items: convicted.length }, 'recording the convicted inputs for the fleet failed; a later job with the same input may crash workers again'));
      await this.answerCrashed(keys, jobId, stalledCounter, convicted, crashesOf, (item, n) => `Request ${item.id} (item ${item.index} of job ${jobId}) was alone in the model when a worker process died, ${n} times (maxCrashes ${o.maxCrashes}), at least once as a fresh process's first model call; it is not run again.`);
    }
    if (rest.length === 0) return;
    o.logger.warn({ jobId, stalledCounter, items: rest.length }, 'job re-run after its worker died: running its items one at a time, each alone in the model');

    // Innocent-looking items first (in envelope order), then those already seen in a crash, fewest first.
    const order = [...rest].sort((a, b) => crashes(a) - crashes(b) || a.index - b.index);
    const delivered: Promise<void>[] = [];
    for (const item of order) {
      const seen = crashes(item) > 0;
      if (seen && o.probe) {
        // Seen in a death alone: never again in a worker; a fresh probe decides.
        const outcome = await this.runProbed(keys, key, jobId, stalledCounter, item, crashes(item));
        if (outcome) {
          delivered.push(outcome.delivered);
          continue;
        }
      }
      const outcome = await o.gate.alone(() => this.runAlone(key, item), { last: seen });
      delivered.push(outcome.delivered);
    }
    const settled = await Promise.allSettled(delivered);
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
  }

  /** One item, alone in the model: its record says so before the call, and is taken back once the call returned. */
  private async runAlone(key: string, item: WorkItem): Promise<BatchOutcome> {
    const { o } = this;
    // A death in this call is proven only if it is this process's first model call (no latent state).
    const fields = o.fresh() ? [String(item.index), provenField(item.index)] : [String(item.index)];
    // The record only (one slot); the stats are model-wide, in another slot on a cluster.
    const write = o.redis.pipeline();
    for (const f of fields) write.hincrby(key, f, 1);
    const replies = await write.pexpire(key, o.settle.doneTtlMs).exec();
    void o.stats.record({ isolated_calls: 1 });
    const failed = replies?.find(([err]) => err);
    // Without the record a crash here would convict nothing: do not run (the job is retried).
    if (!replies || failed) throw failed?.[0] ?? new Error('recording the isolated call failed');
    let outcomes: BatchOutcome[];
    this.inFlight.set(key, [...(this.inFlight.get(key) ?? []), ...fields]);
    try {
      outcomes = await o.pipeline.run([item]);
    } finally {
      // The call returned (with an output or an error): it was not a crash. A failure here
      // over-counts one crash at most; the TTL ends the record anyway.
      const mine = this.inFlight.get(key);
      if (mine) {
        for (const f of fields) mine.splice(mine.indexOf(f), 1);
        if (mine.length === 0) this.inFlight.delete(key);
        const back = o.redis.pipeline();
        for (const f of fields) back.hincrby(key, f, -1);
        await back.exec().catch((err: unknown) => o.logger.warn({ err, key, index: item.index }, 'taking back a crash record failed'));
      }
    }
    return outcomes[0] ?? { delivered: Promise.resolve() };
  }

  /**
   * An item seen in a death alone, run in fresh probe processes: each probe
   * that dies is a proven kill (recorded); once the item has maxCrashes
   * deaths with one proven, it is convicted. A probe that answers answers the
   * item (through the batch pipeline: late cache hit, deadline, settle). No
   * probe possible: undefined, and the caller runs it alone here.
   */
  private async runProbed(keys: ModelKeys, key: string, jobId: string, stalledCounter: number, item: WorkItem, deaths: number): Promise<BatchOutcome | undefined> {
    const { o } = this;
    const probe = o.probe as (inputJson: string) => Promise<ProbeResult>;
    for (let kills = deaths; ; ) {
      void o.stats.record({ isolated_calls: 1 });
      const r = await probe(itemInputJson(item.input));
      if (r.kind === 'unavailable') {
        o.logger.warn({ jobId, index: item.index, requestId: item.id, reason: r.reason }, 'the crash probe could not run; running the input alone in this worker instead');
        return undefined;
      }
      if (r.kind !== 'died') {
        o.logger.warn({ jobId, index: item.index, requestId: item.id, cacheKey: item.key, probe: r.kind, deaths }, 'the input did not kill a fresh process: not convicted; answered with the fresh process\'s result');
        const outcomes = await o.pipeline.run([item], async () => ({ results: [probeResult(r, item)], extraCalls: 0, ms: 0, timeouts: 0, refused: 0, overBudget: 0 }));
        return outcomes[0] ?? { delivered: Promise.resolve() };
      }
      kills++;
      await o.redis
        .pipeline()
        .hincrby(key, String(item.index), 1)
        .hincrby(key, provenField(item.index), 1)
        .pexpire(key, o.settle.doneTtlMs)
        .exec()
        .catch((err: unknown) => o.logger.warn({ err, key }, 'recording a proven kill failed'));
      o.logger.error({ jobId, index: item.index, requestId: item.id, cacheKey: item.key, code: r.code, signal: r.signal, deaths: kills, maxCrashes: o.maxCrashes }, 'the input killed a fresh probe process as its first model call: a proven kill');
      if (kills >= o.maxCrashes) {
        await o.convicted
          .convict([{ item, crashes: kills }])
          .catch((err: unknown) => o.logger.error({ err, jobId }, 'recording the convicted input for the fleet failed; a later job with the same input may crash workers again'));
        await this.answerCrashed(keys, jobId, stalledCounter, [item], () => kills, (it, n) => `Request ${it.id} (item ${it.index} of job ${jobId}) killed the model's process ${n} times alone in the model (maxCrashes ${o.maxCrashes}), at least once a fresh process whose first model call it was; it is not run again.`);
        return { delivered: Promise.resolve() };
      }
    }
  }

  /**
   * Items of an ordinary job whose input the fleet convicted earlier (ConvictedInputs): answered
   * INFERQ_MODEL_CRASHED without running, like a conviction within the job.
   */
  async refuseConvicted(shard: number, jobId: string, items: ReadonlyArray<{ item: WorkItem; crashes: number }>): Promise<void> {
    const crashes = new Map(items.map(({ item, crashes: n }) => [item, n]));
    await this.answerCrashed(
      this.o.shards[shard] as ModelKeys,
      jobId,
      0,
      items.map(({ item }) => item),
      (item) => crashes.get(item) ?? this.o.maxCrashes,
      (item, n) => `Request ${item.id} (item ${item.index} of job ${jobId}): its input was convicted earlier of crashing the worker process (${n} times alone in the model, maxCrashes ${this.o.maxCrashes}); it is not run again.`,
    );
  }

  /** Convicted items: logged, then settled with ModelCrashedError (waiters too, nothing cached), counted, queue room given back. */
  private async answerCrashed(
    keys: ModelKeys,
    jobId: string,
    stalledCounter: number,
    items: readonly WorkItem[],
    crashesOf: (item: WorkItem) => number,
    message: (item: WorkItem, crashes: number) => string,
  ): Promise<void> {
    const { o } = this;
    const settles: SettleItem[] = [];
    for (const item of items) {
      const n = crashesOf(item);
      const err = new ModelCrashedError(message(item, n), { jobId, index: item.index, requestId: item.id, crashes: n });
      o.logger.error(
        { err, jobId, index: item.index, requestId: item.id, client: item.client, cacheKey: item.key, crashes: n, maxCrashes: o.maxCrashes, stalledCounter },
        'this input crashed the worker process maxCrashes times; answering it alone with INFERQ_MODEL_CRASHED',
      );
      // The cache key closes the item's flight: its waiters get the same answer. No cacheValue: nothing is cached.
      settles.push(settleItem(item, failurePayload(err, o.workerId)));
    }
    const pipeline = o.redis.pipeline();
    // Each item's place in the queue ledger goes back in its settle (settleItem marks it counted).
    const calls = appendSettle(pipeline, keys, settles, o.settle, o.waiters.list());
    const replies = await pipeline.exec();
    if (!replies) throw new Error('pipeline was not executed');
    const settled = await settleReplies(o.redis, keys, calls, replies.slice(0, calls.length), o.settle, o.waiters);
    void o.stats.record({ errors: items.length, crashed_items: items.length });
    if (o.onBatch) {
      const flightWaiters = settled.reduce((n, r) => n + r.served, 0);
      const report: BatchReport = {
        items: items.length,
        computed: 0,
        modelMs: 0,
        ok: 0,
        cacheHits: 0,
        errors: { [ErrorCode.MODEL_CRASHED]: items.length },
        retried: 0,
        extraCalls: 0,
        modelTimeouts: 0,
        flightWaiters,
        delivered: true,
      };
      try {
        o.onBatch(report);
      } catch (err) {
        o.logger.warn({ err }, 'the onBatch observer threw');
      }
    }
  }
}

/** A probe's answer as the batch pipeline takes a model's (one input). */
function probeResult(r: Exclude<ProbeResult, { kind: 'died' | 'unavailable' }>, item: WorkItem): ModelRun['results'][number] {
  if (r.kind === 'returned') return { ok: true, output: r.output };
  if (r.kind === 'timeout') {
    return { ok: false, error: new InferqError(ErrorCode.MODEL_TIMEOUT, `Request ${item.id}: the model did not return within modelTimeoutMs for this input alone in a fresh process; not tried again.`), retryable: false };
  }
  const code = isErrorCode(r.code) ? r.code : ErrorCode.MODEL_FAILED;
  return { ok: false, error: new InferqError(code, r.message), retryable: false };
}

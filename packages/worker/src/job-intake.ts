/**
 * What a worker checks of a job before any of it is batched: the envelope's
 * shape (a job that is not an envelope fails whole: its callers cannot be
 * named), each item's shape, the model version and quantization asked for,
 * and that each item's cache key is its input's (the worker, not the client,
 * binds a result to its input). What fails a check is answered at once, never
 * computed or cached; the rest goes on to the batcher.
 */
import { UnrecoverableError, type Job } from 'bullmq';
import { ErrorCode, ModelMismatchError, ProtocolError, type Logger, type Quantization } from '@inferq/core';
import { decodeEnvelope, failurePayload, type RequestEnvelope, type SettleItem } from '@inferq/core/protocol';
import { settleItem, workItem, type BatchReport, type WorkItem } from './batch-pipeline.js';
import { checkInputKeys, unkeyed } from './input-binding.js';

export interface IntakeContext {
  model: string;
  modelVersion: string;
  quantization: Quantization;
  workerId: string;
  logger: Logger;
}

export interface Intake {
  /** Items that passed every check, to run. */
  items: WorkItem[];
  /** Items answered now with their failure (settled by the caller, in one settle). */
  answerNow: SettleItem[];
}

/** Checks a job's envelope; throws `UnrecoverableError` for a job that is not an envelope at all. */
export function takeInJob(job: Job<RequestEnvelope, unknown>, shard: number, ctx: IntakeContext): Intake {
  const { logger, workerId } = ctx;
  const jobId = String(job.id);
  const env = decodeEnvelope(job.data);
  if (!env.ok) {
    const err = new ProtocolError(`Job ${jobId} is not an inferq request envelope: ${env.reason}.`, { details: { jobId } });
    logger.error({ err, jobId }, 'failing a malformed job (its callers cannot be named)');
    throw new UnrecoverableError(err.message);
  }
  const answerNow: SettleItem[] = [];
  const raw = (job.data as { items?: Array<{ q?: unknown } | null> }).items ?? [];
  for (const bad of env.bad) {
    const err = new ProtocolError(`Request item ${bad.index} of job ${jobId} is malformed: ${bad.reason}.`, { details: { jobId } });
    logger.error({ err, jobId, requestId: bad.id }, 'malformed request item');
    // Done for good: its place in the queue ledger (if it held one) goes back in the same settle.
    if (bad.id !== undefined) answerNow.push({ requestId: bad.id, client: env.client, job: { id: jobId, index: bad.index }, payload: failurePayload(err, workerId), counted: raw[bad.index]?.q === 1, tenant: env.tenant });
  }
  let items: WorkItem[] = env.items.map((it) => workItem(it, env.client, env.tenant, jobId, shard, job.timestamp));
  const { modelVersion, quantization } = ctx;
  if (env.modelVersion !== modelVersion || env.quantization !== quantization) {
    // Never computed, never cached: one precision's outputs must not land under the other's keys.
    const err = new ModelMismatchError(
      `This worker serves model version '${modelVersion}' at ${quantization}; the request asked for version '${env.modelVersion}' at ${env.quantization}.`,
      { jobId, worker: workerId },
    );
    logger.error({ err, jobId, items: items.length }, 'refusing requests for another model version or quantization');
    // The cache key closes the item's flight (its waiters get the same refusal); nothing is cached.
    for (const it of items) answerNow.push(settleItem(it, failurePayload(err, workerId)));
    items = [];
  }
  if (items.length > 0) {
    const { bound, forged } = checkInputKeys(items, { model: ctx.model, modelVersion, quantization }, logger);
    for (const { item, err } of forged) answerNow.push(settleItem(unkeyed(item), failurePayload(err, workerId)));
    items = bound;
  }
  return { items, answerNow };
}

/** Items refused before any batch (malformed, another model version, a forged key): reported to `onBatch` as failed items of no model call. */
export function reportRefused(onBatch: (report: BatchReport) => void, refused: readonly SettleItem[], logger: Logger): void {
  const errors: Record<string, number> = {};
  for (const s of refused) {
    let code: string = ErrorCode.PROTOCOL_ERROR;
    try {
      code = (JSON.parse(s.payload) as { error?: { code?: string } }).error?.code ?? code;
    } catch {
      // our own payload; cannot happen
    }
    errors[code] = (errors[code] ?? 0) + 1;
  }
  try {
    onBatch({ items: refused.length, computed: 0, modelMs: 0, ok: 0, cacheHits: 0, errors, retried: 0, extraCalls: 0, modelTimeouts: 0, flightWaiters: 0, delivered: true });
  } catch (err) {
    logger.warn({ err }, 'the onBatch observer threw');
  }
}

/** A re-run's items that no earlier run answered, by the job's done bitmap (`jobDone`, set by the settle). */
export function notYetAnswered(done: Buffer | null, items: WorkItem[]): WorkItem[] {
  return done ? items.filter((it) => !bitIsSet(done, it.index)) : items;
}

/** Bit `index` of a Redis bitmap (Redis numbers bits from the most significant bit of byte 0). */
function bitIsSet(bitmap: Buffer, index: number): boolean {
  const byte = bitmap[index >> 3];
  return byte !== undefined && (byte & (0x80 >> (index & 7))) !== 0;
}

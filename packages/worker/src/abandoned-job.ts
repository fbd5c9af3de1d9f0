/**
 * A job BullMQ failed for good (attempts used up, or stalled past its limit):
 * its callers, and their flights' waiters, are told at once instead of
 * waiting for their deadlines.
 */
import type { Job } from 'bullmq';
import { ErrorCode, InferqError, JobLostError, type Logger, type ModelKeys, type RedisClient } from '@inferq/core';
import { WaiterClients, decodeEnvelope, execSettle, failurePayload, type RequestEnvelope, type SettleItem, type SettleOptions } from '@inferq/core/protocol';
import { settleItem, workItem } from './batch-pipeline.js';

export interface AbandonContext {
  cmd: RedisClient;
  keys: ModelKeys;
  shard: number;
  settle: SettleOptions;
  waiters: WaiterClients;
  workerId: string;
  logger: Logger;
}

/** What the callers of a job failed for good hear: the model's timeout if that was the cause, else a lost job. */
export function abandonedJobError(job: Job<unknown, unknown>, cause: Error): InferqError {
  const jobId = String(job.id);
  return cause instanceof InferqError && cause.code === ErrorCode.MODEL_TIMEOUT
    ? new InferqError(ErrorCode.MODEL_TIMEOUT, `${cause.message} Gave up after ${job.attemptsMade} attempt(s) (job ${jobId}).`, { cause, details: { ...cause.details, jobId } })
    : new JobLostError(`Job ${jobId} failed for good after ${job.attemptsMade} attempt(s): ${cause.message}`, { jobId });
}

/** Answers every item of the job with its failure; never throws (logged instead). */
export async function abandonJob(job: Job<RequestEnvelope, unknown>, cause: Error, ctx: AbandonContext): Promise<void> {
  const env = decodeEnvelope(job.data);
  if (!env.ok) return;
  const jobId = String(job.id);
  const err = abandonedJobError(job, cause);
  ctx.logger.error({ err, jobId, items: env.items.length }, 'job failed for good; telling its callers');
  const payload = failurePayload(err, ctx.workerId);
  // Items an earlier attempt answered are skipped by their done bits: no second answer, no second
  // release of their places in the queue ledger.
  const settles: SettleItem[] = env.items.map((it) => settleItem(workItem(it, env.client, env.tenant, jobId, ctx.shard, job.timestamp), payload));
  await execSettle(ctx.cmd, ctx.keys, settles, ctx.settle, ctx.waiters).catch((e: unknown) =>
    ctx.logger.error({ err: e, jobId }, 'could not tell the callers of a failed job; they learn it from their own checks'),
  );
}

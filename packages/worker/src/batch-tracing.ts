/**
 * The worker's spans of one batch (docs/tracing.md): `inferq.batch`, a root
 * span that LINKS the request span of each item it was handed (one batch
 * serves many traces, so it can be the child of none), with its steps as
 * children: `inferq.queue_wait`, `inferq.cache_lookup`, `inferq.model`,
 * `inferq.settle`.
 *
 * The batch span starts at the earliest enqueue of its items (BullMQ's
 * `job.timestamp`, the client's clock) so that `inferq.queue_wait` nests
 * inside it: a child starting before its parent is drawn as clock skew by
 * most backends. It ends when the settle pipeline has delivered (or failed
 * to deliver) the batch's results, after `BatchPipeline.run` returned.
 *
 * Without an SDK every span is a non-recording one: a few allocations per
 * batch, nothing per item (items carry no trace context then).
 */
import { TRACE_ATTR, childSpan, failSpan, inSpan, recordQueueWait, startBatchSpan } from '@inferq/core';

/** A span of this worker's; typed through core's helper (the worker has no dependency of its own on `@opentelemetry/api`). */
type Span = ReturnType<typeof startBatchSpan>;

/** What the batch span needs of a work item: its id, trace carrier, job and when that job was enqueued. */
export interface TracedItem {
  id: string;
  t: Record<string, string> | undefined;
  jobId: string;
  enqueuedAt: number;
}

export class BatchTrace {
  private readonly span: Span;
  /** The settle step's span, from `settling()` until the results reached Redis. */
  private settle: Span | undefined;
  private ended = false;

  constructor(model: string, workerId: string, items: readonly TracedItem[], now: number = Date.now()) {
    let earliest = now;
    const jobs = new Set<string>();
    for (const it of items) {
      // A clock ahead of ours (another machine) must not make the wait negative.
      if (it.enqueuedAt < earliest) earliest = it.enqueuedAt;
      jobs.add(it.jobId);
    }
    this.span = startBatchSpan(model, items, { [TRACE_ATTR.worker]: workerId, [TRACE_ATTR.jobId]: [...jobs] }, earliest);
    recordQueueWait(this.span, earliest, now);
  }

  /** Runs one step of the batch (cache lookup, model call) inside its own child span. */
  step<T>(name: 'inferq.cache_lookup' | 'inferq.model', fn: () => Promise<T>): Promise<T> {
    return inSpan(childSpan(this.span, name), fn);
  }

  /** Starts the settle step: `settled` ends it, and the batch, once the results reached Redis (or did not). */
  settling(): void {
    this.settle = childSpan(this.span, 'inferq.settle');
  }

  /** Ends the settle span and the batch span when `delivered` settles; a failed delivery fails both. */
  settled(delivered: Promise<unknown>, cacheHits: number): void {
    this.span.setAttribute(TRACE_ATTR.cacheHit, cacheHits > 0);
    // A failed delivery was logged by the pipeline where it failed; here it only marks the spans.
    void delivered.then(
      () => this.end(),
      (err: unknown) => this.end(err),
    );
  }

  /** Ends the batch span (and a settle span still open) once; with `err`, as failed. */
  end(err?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    const settle = this.settle;
    if (settle) {
      if (err !== undefined) failSpan(settle, err);
      settle.end();
    }
    if (err !== undefined) failSpan(this.span, err);
    this.span.end();
  }
}

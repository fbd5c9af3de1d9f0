/**
 * OpenTelemetry across the queue (docs/tracing.md). Only `@opentelemetry/api`:
 * every call here is a no-op until the application installs an SDK (a
 * tracer provider and a propagator), and then costs a span per request and a
 * few per batch.
 *
 * - A client's `infer` starts a span `inferq.request` (a child of the
 *   caller's active span, if any) and puts its context into the request's
 *   envelope item (`t`, as the application's propagator writes it, W3C
 *   `traceparent` by default). Without an SDK the carrier is empty and the
 *   item carries nothing.
 * - A worker's batch span `inferq.batch` is a root span that LINKS the
 *   request span of every item it served: one batch serves many traces, so
 *   it can be the child of none of them. Its children: `inferq.queue_wait`
 *   (from the job's enqueue to the batch), `inferq.cache_lookup`,
 *   `inferq.model`, `inferq.settle`.
 * - Attributes: `inferq.model`, `inferq.tenant`, `inferq.batch.size`,
 *   `inferq.cache.hit`, `inferq.request.id`.
 */
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  propagation,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
} from '@opentelemetry/api';

/** The instrumentation scope of every inferq span. */
export const TRACER_NAME = 'inferq';

export const ATTR = Object.freeze({
  model: 'inferq.model',
  tenant: 'inferq.tenant',
  batchSize: 'inferq.batch.size',
  cacheHit: 'inferq.cache.hit',
  requestId: 'inferq.request.id',
  jobId: 'inferq.job.id',
  worker: 'inferq.worker',
});

/** A trace context as the propagator wrote it (`traceparent`, `tracestate`, ...): what an envelope item carries. */
export type TraceCarrier = Record<string, string>;

/** Largest carrier an item takes (bytes of its keys and values): a larger one (a huge baggage) is not sent. */
export const MAX_CARRIER_BYTES = 512;

function tracer() {
  return trace.getTracer(TRACER_NAME);
}

/**
 * Client: starts the span of one request, a child of `parent` (default: the
 * active context). Returns the span and the carrier to put in the item, or
 * `undefined` when there is nothing to carry (no SDK, no propagator, or too big).
 */
export function startRequestSpan(model: string, attributes: Attributes = {}, parent: Context = context.active()): { span: Span; carrier: TraceCarrier | undefined } {
  const span = tracer().startSpan('inferq.request', { kind: SpanKind.PRODUCER, attributes: { [ATTR.model]: model, ...attributes } }, parent);
  if (!span.isRecording() && !trace.getSpanContext(parent)) return { span, carrier: undefined };
  const carrier: TraceCarrier = {};
  propagation.inject(trace.setSpan(parent, span), carrier);
  return { span, carrier: carrierOrUndefined(carrier) };
}

function carrierOrUndefined(carrier: TraceCarrier): TraceCarrier | undefined {
  let bytes = 0;
  for (const [k, v] of Object.entries(carrier)) bytes += k.length + v.length;
  return bytes === 0 || bytes > MAX_CARRIER_BYTES ? undefined : carrier;
}

/** Ends a request span with how it went. */
export function endRequestSpan(span: Span, outcome: { cached?: boolean; batchSize?: number; error?: unknown }): void {
  if (outcome.cached !== undefined) span.setAttribute(ATTR.cacheHit, outcome.cached);
  if (outcome.batchSize !== undefined) span.setAttribute(ATTR.batchSize, outcome.batchSize);
  if (outcome.error !== undefined) failSpan(span, outcome.error);
  span.end();
}

/** Checks a carrier read from an envelope item: string keys and values, bounded; anything else is dropped. */
export function decodeCarrier(raw: unknown): TraceCarrier | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const out: TraceCarrier = {};
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') return undefined;
    out[k] = v;
  }
  return carrierOrUndefined(out);
}

/** One link per item whose carrier holds a valid span context: the request spans a batch served. */
export function linksOf(items: ReadonlyArray<{ id: string; t?: TraceCarrier | undefined }>): Link[] {
  const links: Link[] = [];
  for (const item of items) {
    if (!item.t) continue;
    const sc = trace.getSpanContext(propagation.extract(ROOT_CONTEXT, item.t));
    if (sc && trace.isSpanContextValid(sc)) links.push({ context: sc, attributes: { [ATTR.requestId]: item.id } });
  }
  return links;
}

/**
 * Worker: the span of one model call over `items`, a root span linking each
 * item's request span. Its children are made with `childSpan(batch, ...)`.
 */
export function startBatchSpan(model: string, items: ReadonlyArray<{ id: string; t?: TraceCarrier | undefined }>, attributes: Attributes = {}, startTime?: number): Span {
  return tracer().startSpan(
    'inferq.batch',
    { kind: SpanKind.CONSUMER, root: true, links: linksOf(items), attributes: { [ATTR.model]: model, [ATTR.batchSize]: items.length, ...attributes }, ...(startTime !== undefined && { startTime }) },
    ROOT_CONTEXT,
  );
}

/** A span inside a batch: `inferq.queue_wait`, `inferq.cache_lookup`, `inferq.model`, `inferq.settle`. */
export function childSpan(parent: Span, name: 'inferq.queue_wait' | 'inferq.cache_lookup' | 'inferq.model' | 'inferq.settle', attributes: Attributes = {}, startTime?: number): Span {
  return tracer().startSpan(name, { kind: SpanKind.INTERNAL, attributes, ...(startTime !== undefined && { startTime }) }, trace.setSpan(ROOT_CONTEXT, parent));
}

/**
 * The time a batch's requests waited in the queue: from the earliest
 * enqueue (BullMQ's `job.timestamp`, ms) to `until` (default now), as a
 * finished child of the batch span.
 */
export function recordQueueWait(batch: Span, enqueuedAtMs: number, untilMs: number = Date.now()): void {
  childSpan(batch, 'inferq.queue_wait', {}, enqueuedAtMs).end(untilMs);
}

/** Marks a span failed with `err` (recorded as an exception event). */
export function failSpan(span: Span, err: unknown): void {
  const e = err instanceof Error ? err : new Error(String(err));
  span.recordException(e);
  span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
}

/** Runs `fn` inside `span` (ended when it settles, failed if it throws): for the batch's child steps. */
export async function inSpan<T>(span: Span, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    failSpan(span, err);
    throw err;
  } finally {
    span.end();
  }
}

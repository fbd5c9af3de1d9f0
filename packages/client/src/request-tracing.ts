/**
 * The client's spans (docs/tracing.md): one `inferq.request` span per flight
 * (a request as Redis sees it), a child of the caller's active span, whose
 * context travels in each of the flight's envelope items (`RequestItem.t`)
 * so that the worker's batch span can link it.
 *
 * Why per flight and not per caller: callers of this process that ask for
 * the same input share one flight and one item; the span covers that one
 * request and ends when its last caller is answered (value, error or timeout).
 *
 * Cost without an SDK: `startRequestSpan` gives a non-recording span and no
 * carrier, and the flight then keeps nothing (`trace` undefined), so the
 * send path adds no field to the item and the answer path ends no span.
 */
import { TRACE_ATTR, endRequestSpan, startRequestSpan } from '@inferq/core';

/**
 * A flight's span and the context its items carry. Typed through core's
 * helper: the client has no dependency of its own on `@opentelemetry/api`.
 */
export type FlightTrace = ReturnType<typeof startRequestSpan>;

/** How a flight's last caller was answered: a result or an error. */
export type TraceOutcome = { cached: boolean; batchSize?: number | undefined } | Error;

export class RequestTracer {
  /** The attributes of every request span of this client, built once (the model is added by startRequestSpan). */
  private readonly attributes: Record<string, string>;

  constructor(
    private readonly model: string,
    tenant: string,
  ) {
    this.attributes = { [TRACE_ATTR.tenant]: tenant };
  }

  /**
   * The span of a new flight (its request id is what the batch span's link
   * names), or undefined when there is nothing to record or carry (no SDK).
   */
  start(requestId: string | undefined): FlightTrace | undefined {
    const t = startRequestSpan(this.model, this.attributes);
    // A non-recording span with a carrier still propagates (a sampled-out parent's decision travels on).
    if (t.carrier === undefined && !t.span.isRecording()) return undefined;
    // Set here, not in `attributes`: an object per request only when a span is recorded.
    if (requestId !== undefined) t.span.setAttribute(TRACE_ATTR.requestId, requestId);
    return t;
  }

  /** A request answered from the in-process cache: no flight, a span that ends at once. */
  localHit(): void {
    const t = this.start(undefined);
    if (t) endRequestSpan(t.span, { cached: true });
  }
}

/** Ends a flight's span once (the caller ensures its last caller was just answered); later calls do nothing. */
export function endFlightTrace(flight: { trace: FlightTrace | undefined }, outcome: TraceOutcome): void {
  const t = flight.trace;
  if (!t) return;
  flight.trace = undefined;
  if (outcome instanceof Error) endRequestSpan(t.span, { error: outcome });
  else endRequestSpan(t.span, outcome.batchSize === undefined ? { cached: outcome.cached } : { cached: outcome.cached, batchSize: outcome.batchSize });
}

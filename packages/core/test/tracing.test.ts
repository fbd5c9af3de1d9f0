/**
 * tracing.ts with the OpenTelemetry SDK's in-memory exporter: request spans
 * started by a "client" travel as envelope items (JSON, as BullMQ stores
 * them) to a "worker", whose batch span is a root span LINKING every request
 * span it served, with its queue-wait, cache-lookup, model and settle
 * children. Without an SDK nothing travels. A malformed carrier drops the
 * link, never the request.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { context, propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ENVELOPE_VERSION, decodeEnvelope, type RequestEnvelope, type RequestItem } from '../src/protocol/index.js';
import { TRACE_ATTR, childSpan, endRequestSpan, inSpan, recordQueueWait, startBatchSpan, startRequestSpan } from '../src/index.js';

afterAll(() => {
  trace.disable();
  propagation.disable();
});

function envelopeOf(items: RequestItem[]): RequestEnvelope {
  return { v: ENVELOPE_VERSION, client: 'c-1-1', modelVersion: '1', quantization: 'FP32', items };
}

describe('tracing across the queue', () => {
  it('without an SDK: no carrier, nothing added to the envelope', () => {
    const { span, carrier } = startRequestSpan('m');
    expect(carrier).toBeUndefined();
    expect(span.isRecording()).toBe(false);
    endRequestSpan(span, { cached: false });
  });

  it('with an SDK: the batch span links every request span it served, its steps are its children', async () => {
    const exporter = new InMemorySpanExporter();
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());

    // Client: three requests under the application's span.
    const app = trace.getTracer('app').startSpan('POST /classify');
    const requests = [0, 1, 2].map((i) => ({ id: `c-1-1.${i}`, ...startRequestSpan('m', { [TRACE_ATTR.tenant]: 'acme' }, trace.setSpan(context.active(), app)) }));
    const items: RequestItem[] = requests.map((r, i) => ({ id: r.id, input: JSON.stringify({ x: i }), deadline: Date.now() + 10_000, ...(r.carrier && { t: r.carrier }) }));
    expect(items.every((it) => typeof it.t?.traceparent === 'string')).toBe(true);

    // The queue: BullMQ stores the envelope as JSON.
    const enqueuedAt = Date.now();
    const decoded = decodeEnvelope(JSON.parse(JSON.stringify(envelopeOf(items))));
    if (!decoded.ok) throw new Error(decoded.reason);

    // Worker: one batch over the three items.
    const batch = startBatchSpan('m', decoded.items, { [TRACE_ATTR.worker]: 'w-1' });
    recordQueueWait(batch, enqueuedAt);
    await inSpan(childSpan(batch, 'inferq.cache_lookup', { [TRACE_ATTR.cacheHit]: false }), async () => undefined);
    await inSpan(childSpan(batch, 'inferq.model'), async () => undefined);
    await expect(inSpan(childSpan(batch, 'inferq.settle'), async () => Promise.reject(new Error('settle failed')))).rejects.toThrow('settle failed');
    batch.end();
    for (const r of requests) endRequestSpan(r.span, { cached: false, batchSize: 3 });
    app.end();

    const spans = exporter.getFinishedSpans();
    const byName = (n: string) => spans.filter((s) => s.name === n);
    const reqSpans = byName('inferq.request');
    expect(reqSpans).toHaveLength(3);
    for (const s of reqSpans) {
      expect(s.parentSpanContext?.spanId).toBe(app.spanContext().spanId);
      expect(s.attributes).toMatchObject({ [TRACE_ATTR.model]: 'm', [TRACE_ATTR.tenant]: 'acme', [TRACE_ATTR.cacheHit]: false, [TRACE_ATTR.batchSize]: 3 });
    }
    const [b] = byName('inferq.batch');
    expect(b).toBeDefined();
    // A root span of its own trace, linking each request span (not the child of any of them).
    expect(b!.parentSpanContext).toBeUndefined();
    expect(b!.spanContext().traceId).not.toBe(app.spanContext().traceId);
    expect(b!.links.map((l) => l.context.spanId).sort()).toEqual(reqSpans.map((s) => s.spanContext().spanId).sort());
    expect(b!.links.map((l) => l.attributes?.[TRACE_ATTR.requestId]).sort()).toEqual(requests.map((r) => r.id));
    expect(b!.attributes).toMatchObject({ [TRACE_ATTR.model]: 'm', [TRACE_ATTR.batchSize]: 3, [TRACE_ATTR.worker]: 'w-1' });
    for (const name of ['inferq.queue_wait', 'inferq.cache_lookup', 'inferq.model', 'inferq.settle']) {
      const [c] = byName(name);
      expect(c?.parentSpanContext?.spanId, name).toBe(b!.spanContext().spanId);
    }
    expect(byName('inferq.settle')[0]!.status.code).toBe(2); // ERROR
  });

  it('a malformed carrier drops the link, never the request', () => {
    const items = [
      { id: 'c-1-1.0', input: '1', deadline: 1, t: 5 },
      { id: 'c-1-1.1', input: '2', deadline: 1, t: { traceparent: 7 } },
      { id: 'c-1-1.2', input: '3', deadline: 1, t: { traceparent: 'x'.repeat(600) } },
    ];
    const decoded = decodeEnvelope({ v: ENVELOPE_VERSION, client: 'c-1-1', modelVersion: '1', quantization: 'FP32', items });
    expect(decoded.ok && decoded.items.map((it) => [it.id, it.t])).toEqual([
      ['c-1-1.0', undefined],
      ['c-1-1.1', undefined],
      ['c-1-1.2', undefined],
    ]);
    expect(decoded.ok && decoded.bad).toEqual([]);
  });
});

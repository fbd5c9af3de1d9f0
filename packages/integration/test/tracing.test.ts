/**
 * OpenTelemetry across the queue (docs/tracing.md), in the production shape:
 * a client process and an `inferq-worker` process, each with the SDK
 * installed by a preload (fixtures/otel-preload.mjs) that writes every
 * finished span as a JSON line to a file. The client sends requests under an
 * application span (one of them makes the model fail, one is answered from
 * its in-process cache); then both files are read and the trace checked:
 * each request span is a child of the application span, each batch span is
 * a root span linking exactly the request spans it served, with its four
 * steps as children, and the attributes say what happened.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BullMQOtel } from 'bullmq-otel';
import { propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ConfigError, TRACE_ATTR } from '@inferq/core';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { spawnNode, startWorkerProcess } from '@inferq/testkit';
import { useTestRedis } from '@inferq/testkit/harness';

const PRELOAD = fileURLToPath(new URL('./fixtures/otel-preload.mjs', import.meta.url));
const CLIENT = fileURLToPath(new URL('./fixtures/traced-client.ts', import.meta.url));
const MODEL_MODULE = fileURLToPath(new URL('./fixtures/square-model.mjs', import.meta.url));

/** One span as the preload's exporter wrote it. */
interface SpanLine {
  scope: string;
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  attributes: Record<string, unknown>;
  links: Array<{ traceId: string; spanId: string; attributes: Record<string, unknown> }>;
  status: { code: number; message?: string };
  events: string[];
  startMs: number;
  endMs: number;
}

/** SpanKind and SpanStatusCode of @opentelemetry/api, as numbers in the JSON. */
const PRODUCER = 3;
const CONSUMER = 4;
const STATUS_ERROR = 2;

const h = useTestRedis();

function readSpans(file: string): SpanLine[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as SpanLine);
}

/** The env that runs a process with the SDK preloaded, its spans going to `file`. */
function traced(file: string): NodeJS.ProcessEnv {
  return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${pathToFileURL(PRELOAD).href}`.trim(), SPANS_FILE: file };
}

describe('tracing across the queue', () => {
  it('request spans under the application span, linked by the batch span that served them, with its four steps', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'inferq-tracing-'));
    const clientSpans = join(dir, 'client-spans.jsonl');
    const workerSpans = join(dir, 'worker-spans.jsonl');
    writeFileSync(clientSpans, '');
    writeFileSync(workerSpans, '');
    const model = 'traced';
    const prefix = h.redis.newPrefix();
    const worker = h.after(
      await startWorkerProcess({
        redisUrl: h.redis.url,
        model,
        module: MODEL_MODULE,
        prefix,
        args: ['--max-batch-size', '16', '--batch-timeout-ms', '100', '--worker-id', 'w-traced'],
        env: traced(workerSpans),
      }),
    );
    // Six inputs the model squares, one it fails (square-model.mjs: `fail`).
    const inputs = [1, 2, 3, 4, 5, 6].map((x) => ({ x })).concat([{ x: 7, fail: true } as { x: number }]);
    const inputsFile = join(dir, 'inputs.json');
    writeFileSync(inputsFile, JSON.stringify(inputs));
    const client = h.after(
      spawnNode(CLIENT, [inputsFile], { REDIS_URL: h.redis.url, MODEL: model, PREFIX: prefix, TENANT: 'acme', BULLMQ_OTEL: '1', ...traced(clientSpans) }),
    );
    await client.waitForLine(/^DONE$/, 60_000);
    expect((await client.exited).code).toBe(0);
    // The worker ends its batch spans when their results are delivered; stopping it flushes nothing more, but waits for that.
    expect((await worker.stop()).code).toBe(0);

    // What the caller saw.
    const answers = client.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { x: number; y?: number; cached?: boolean; code?: string });
    expect(answers).toHaveLength(8);
    for (const a of answers.slice(0, 6)) expect(a).toMatchObject({ y: a.x * a.x, cached: false });
    expect(answers[6]).toMatchObject({ x: 7, code: 'INFERQ_MODEL_FAILED' });
    expect(answers[7]).toMatchObject({ x: 1, y: 1, cached: true });
    const [, appTraceId, appSpanId] = (client.lines.find((l) => l.startsWith('APP ')) as string).split(' ');

    // Client: one request span per request, each a PRODUCER child of the application span.
    const cspans = readSpans(clientSpans);
    const requests = cspans.filter((s) => s.name === 'inferq.request');
    expect(requests).toHaveLength(8);
    for (const r of requests) {
      expect(r).toMatchObject({ scope: 'inferq', kind: PRODUCER, traceId: appTraceId, parentSpanId: appSpanId });
      expect(r.attributes).toMatchObject({ [TRACE_ATTR.model]: model, [TRACE_ATTR.tenant]: 'acme' });
    }
    const sent = requests.filter((r) => r.attributes[TRACE_ATTR.requestId] !== undefined);
    expect(sent).toHaveLength(7);
    const failed = sent.filter((r) => r.status.code === STATUS_ERROR);
    expect(failed).toHaveLength(1);
    expect(failed[0]?.status.message).toContain('cannot square 7');
    expect(failed[0]?.events).toContain('exception');
    const computed = sent.filter((r) => r.status.code !== STATUS_ERROR);
    for (const r of computed) expect(r.attributes).toMatchObject({ [TRACE_ATTR.cacheHit]: false, [TRACE_ATTR.batchSize]: expect.any(Number) });
    // The in-process cache hit: a request span that ended at once, with no request id (no item carried it).
    const localHit = requests.filter((r) => r.attributes[TRACE_ATTR.requestId] === undefined);
    expect(localHit).toHaveLength(1);
    expect(localHit[0]?.attributes[TRACE_ATTR.cacheHit]).toBe(true);
    // bullmq-otel, passed as the client's `telemetry`: BullMQ's own spans (the job add) are there too.
    expect(cspans.some((s) => s.scope === 'bullmq')).toBe(true);

    // Worker: root CONSUMER batch spans whose links are exactly the request spans sent.
    const wspans = readSpans(workerSpans);
    const batches = wspans.filter((s) => s.name === 'inferq.batch');
    expect(batches.length).toBeGreaterThanOrEqual(1);
    const bySpanId = new Map(sent.map((r) => [r.spanId, r]));
    const linked: string[] = [];
    for (const b of batches) {
      expect(b).toMatchObject({ scope: 'inferq', kind: CONSUMER, parentSpanId: null });
      expect(b.traceId).not.toBe(appTraceId);
      expect(b.attributes).toMatchObject({ [TRACE_ATTR.model]: model, [TRACE_ATTR.worker]: 'w-traced', [TRACE_ATTR.cacheHit]: false, [TRACE_ATTR.batchSize]: b.links.length });
      expect(b.attributes[TRACE_ATTR.jobId]).toEqual(expect.arrayContaining([expect.any(String)]));
      for (const l of b.links) {
        const r = bySpanId.get(l.spanId);
        expect(r, `link ${l.spanId} names no request span`).toBeDefined();
        expect(l.traceId).toBe(appTraceId);
        expect(l.attributes[TRACE_ATTR.requestId]).toBe(r?.attributes[TRACE_ATTR.requestId]);
        // The size the caller was told is the size of the batch that linked it.
        if (r?.status.code !== STATUS_ERROR) expect(r?.attributes[TRACE_ATTR.batchSize]).toBe(b.links.length);
        linked.push(l.spanId);
      }
      // Its four steps, children of the batch span, in order, within it.
      const children = wspans.filter((s) => s.parentSpanId === b.spanId);
      expect(children.map((c) => c.name).sort()).toEqual(['inferq.cache_lookup', 'inferq.model', 'inferq.queue_wait', 'inferq.settle']);
      const step = (n: string) => children.find((c) => c.name === n) as SpanLine;
      for (const c of children) {
        expect(c.traceId).toBe(b.traceId);
        expect(c.startMs).toBeGreaterThanOrEqual(b.startMs - 1);
        expect(c.endMs).toBeLessThanOrEqual(b.endMs + 1);
      }
      expect(step('inferq.queue_wait').endMs).toBeLessThanOrEqual(step('inferq.cache_lookup').startMs + 1);
      expect(step('inferq.cache_lookup').endMs).toBeLessThanOrEqual(step('inferq.model').startMs + 1);
      expect(step('inferq.model').endMs).toBeLessThanOrEqual(step('inferq.settle').startMs + 1);
    }
    // Each request sent was served by exactly one batch.
    expect(linked.sort()).toEqual(sent.map((r) => r.spanId).sort());
  }, 120_000);

  it('in one process: a flight shared by two callers is one span; a timeout ends it failed, and the late result changes nothing', async () => {
    const exporter = new InMemorySpanExporter();
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    h.defer(() => {
      trace.disable();
      propagation.disable();
    });
    const prefix = h.redis.newPrefix();
    type In = { x: number; sleep?: number };
    const worker = h.after(
      new InferenceWorker<In, { y: number }>({
        redis: h.redis.url,
        model: 'inproc',
        prefix,
        config: { batchTimeoutMs: 5 },
        run: async (xs) => {
          const sleep = Math.max(0, ...xs.map((x) => x.sleep ?? 0));
          if (sleep) await new Promise((r) => setTimeout(r, sleep));
          return xs.map((x) => ({ y: x.x * x.x }));
        },
      }),
    );
    await worker.start();
    const client = h.after(new InferenceClient<In, { y: number }>({ redis: h.redis.url, model: 'inproc', prefix }));
    const [a, b] = await Promise.all([client.infer({ x: 3 }), client.infer({ x: 3 })]);
    expect([a.output.y, b.output.y, b.coalesced]).toEqual([9, 9, true]);
    await expect(client.infer({ x: 4, sleep: 1500 }, { timeoutMs: 300 })).rejects.toMatchObject({ code: 'INFERQ_TIMEOUT' });
    // The late result reaches the client after the timeout: its span must not end a second time.
    await new Promise((r) => setTimeout(r, 1800));

    const spans = exporter.getFinishedSpans();
    const requests = spans.filter((s) => s.name === 'inferq.request');
    expect(requests).toHaveLength(2);
    const [shared, timedOut] = requests.sort((p, q) => p.startTime[1] - q.startTime[1] + (p.startTime[0] - q.startTime[0]) * 1e9);
    expect(shared?.attributes).toMatchObject({ [TRACE_ATTR.cacheHit]: false, [TRACE_ATTR.batchSize]: 1 });
    expect(shared?.status.code).toBe(0);
    expect(timedOut?.status).toMatchObject({ code: 2, message: expect.stringContaining('timed out') });
    // Both requests were computed: each batch links exactly one of them.
    const batches = spans.filter((s) => s.name === 'inferq.batch');
    expect(batches.flatMap((s) => s.links.map((l) => l.context.spanId)).sort()).toEqual(requests.map((r) => r.spanContext().spanId).sort());
  }, 30_000);

  it('the telemetry option takes a BullMQ Telemetry (bullmq-otel) and refuses anything else', () => {
    const base = { redis: h.redis.url, model: 'm', run: async (xs: unknown[]) => xs };
    expect(() => new InferenceWorker({ ...base, telemetry: new BullMQOtel() })).not.toThrow();
    expect(() => new InferenceWorker({ ...base, telemetry: 'bullmq' as never })).toThrow(ConfigError);
    expect(() => new InferenceWorker({ ...base, telemetry: BullMQOtel as never })).toThrow(/telemetry/);
  });
});

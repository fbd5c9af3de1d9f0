/**
 * What the tracing call sites (docs/tracing.md) cost when the application has
 * installed no OpenTelemetry SDK, the default: per request on the client
 * (`RequestTracer.start` on a new flight, the send path's carrier check, the
 * answer path's span check; and a local cache hit), per batch on the worker
 * (`BatchTrace`: the batch span, queue wait, two traced steps, the settle).
 * Each figure is the traced loop minus the same loop without the calls, the
 * median of `--rounds` rounds, in ns.
 *
 *   npx tsx --conditions=source packages/bench/src/micro/tracing-cost.ts [--n 2000000] [--batches 200000] [--batch 32] [--rounds 5]
 */
import { parseArgs } from 'node:util';
import { RequestTracer, type FlightTrace } from '../../../client/src/request-tracing.js';
import { BatchTrace, type TracedItem } from '../../../worker/src/batch-tracing.js';

const { values } = parseArgs({
  options: { n: { type: 'string', default: '2000000' }, batches: { type: 'string', default: '200000' }, batch: { type: 'string', default: '32' }, rounds: { type: 'string', default: '5' } },
});
const N = Number(values.n);
const BATCHES = Number(values.batches);
const BATCH = Number(values.batch);
const ROUNDS = Number(values.rounds);

const tracer = new RequestTracer('bench', 'acme');
const ids = Array.from({ length: 1024 }, (_, i) => `bench-1-1.${i.toString(36)}`);
let sink = 0;

/** ns per iteration of `body` over `n` iterations. */
function timeLoop(n: number, body: (i: number) => void): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) body(i);
  return Number(process.hrtime.bigint() - t0) / n;
}

/** A flight as the client holds one: what the call sites read. */
interface MiniFlight {
  id: string;
  trace: FlightTrace | undefined;
}

/** The per-request call sites of the client: a new flight's span, the item's carrier check, the answer's span check. */
function clientTraced(i: number): void {
  const f: MiniFlight = { id: ids[i & 1023] as string, trace: tracer.start(ids[i & 1023]) };
  const item: { id: string; t?: Record<string, string> } = { id: f.id };
  if (f.trace?.carrier) item.t = f.trace.carrier;
  if (f.trace) sink++;
  sink += item.id.length;
}

function clientPlain(i: number): void {
  const f: MiniFlight = { id: ids[i & 1023] as string, trace: undefined };
  const item: { id: string; t?: Record<string, string> } = { id: f.id };
  sink += item.id.length + (f.trace ? 1 : 0);
}

const items: TracedItem[] = Array.from({ length: BATCH }, (_, i) => ({ id: ids[i] as string, t: undefined, jobId: String(i >> 3), enqueuedAt: Date.now() }));
const delivered = Promise.resolve();

/** One batch's tracing as BatchPipeline.run does it: span, two steps, settle. */
async function batchTraced(): Promise<void> {
  const trace = new BatchTrace('bench', 'w-1', items);
  sink += await trace.step('inferq.cache_lookup', async () => 1);
  sink += await trace.step('inferq.model', async () => 1);
  trace.settling();
  trace.settled(delivered, 0);
}

async function batchPlain(): Promise<void> {
  sink += await (async () => 1)();
  sink += await (async () => 1)();
}

async function timeBatches(n: number, body: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await body();
  return Number(process.hrtime.bigint() - t0) / n;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

// Warm-up: every path optimised before it is timed.
timeLoop(200_000, clientTraced);
timeLoop(200_000, clientPlain);
timeLoop(200_000, () => tracer.localHit());
await timeBatches(20_000, batchTraced);
await timeBatches(20_000, batchPlain);

const request: number[] = [];
const localHit: number[] = [];
const batch: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  request.push(timeLoop(N, clientTraced) - timeLoop(N, clientPlain));
  localHit.push(timeLoop(N, () => tracer.localHit()) - timeLoop(N, () => void sink++));
  batch.push((await timeBatches(BATCHES, batchTraced)) - (await timeBatches(BATCHES, batchPlain)));
}
console.log(`tracing call sites without an SDK (node ${process.version}; median of ${ROUNDS} rounds; traced minus untraced loop):`);
console.log(`  client, per request (new flight: span, carrier check, answer check)  ${median(request).toFixed(0)} ns   rounds: ${request.map((x) => x.toFixed(0)).join(' ')}`);
console.log(`  client, per in-process cache hit                                     ${median(localHit).toFixed(0)} ns   rounds: ${localHit.map((x) => x.toFixed(0)).join(' ')}`);
console.log(`  worker, per batch of ${BATCH} (batch span, queue wait, 2 steps, settle)     ${median(batch).toFixed(0)} ns = ${(median(batch) / BATCH).toFixed(0)} ns per item   rounds: ${batch.map((x) => x.toFixed(0)).join(' ')}`);
if (sink === -1) console.log(sink);

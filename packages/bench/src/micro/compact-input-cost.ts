/**
 * What one tensor input costs between the client's validation and the
 * model's batch tensor, as canonical JSON text (`input`, the old path) and
 * in compact form (`f64`, base64 of its float64 values), per input:
 *
 * - client: validation + encoding (canonicalJson, or flatNumbers + encodeF64)
 *   and its item as BullMQ's JSON.stringify writes it (escaping the text);
 * - worker: its item as BullMQ's JSON.parse reads it, then the input for the
 *   model (JSON.parse of the text, or decodeF64: the Float64Array an opted-in
 *   model such as onnxModel reads, plus Array.from for one that did not opt
 *   in), and the Float32Array batch tensor write the ONNX model does.
 * - client only and worker only: the two sides apart (uncached; the worker
 *   side as onnxModel reads a typed input: one Float32Array.set);
 * - JSON embedded unescaped (as JSON.rawJSON would allow) against compact;
 * - `cached`: the same plus the cache key (client: canonical JSON + SHA-256;
 *   worker: the key check of input-binding.ts, which for a compact input
 *   first writes the canonical JSON back from the numbers).
 *
 * A and B run interleaved (A B A B ...), each round for `--ms` of this
 * process's CPU time, and the report gives CPU µs per input: the median of
 * each side and of the per-pair ratio. This machine's speed drifts, so only
 * ratios within one pair mean much.
 *
 *   npx tsx --conditions=source packages/bench/src/micro/compact-input-cost.ts [--floats 256] [--pairs 7] [--ms 300]
 */
import { parseArgs } from 'node:util';
import { canonicalJson, keyFromCanonicalInput, type ModelIdentity } from '@inferq/core';
import { decodeF64, encodeF64, f64Json, flatNumbers } from '@inferq/core/protocol';

const { values } = parseArgs({ options: { floats: { type: 'string', default: '256' }, pairs: { type: 'string', default: '7' }, ms: { type: 'string', default: '300' } } });
const FLOATS = Number(values.floats);
const PAIRS = Number(values.pairs);
const MS = Number(values.ms);
const identity: ModelIdentity = { model: 'bench', modelVersion: '1', quantization: 'FP32' };

let seed = 20240601;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
/** A pool of distinct inputs, so no step is served from a cache of its last result. */
const POOL = 64;
const inputs = Array.from({ length: POOL }, () => Array.from({ length: FLOATS }, rand));
const tensor = new Float32Array(FLOATS);
let sink = 0;

function writeTensor(values: ArrayLike<number>): void {
  for (let i = 0; i < values.length; i++) tensor[i] = values[i] as number;
}

/** One input, client then worker, the old way; returns something so nothing is optimised away. */
function jsonPath(input: number[], cached: boolean, seq: number): number {
  const text = canonicalJson(input);
  const key = cached ? keyFromCanonicalInput(identity, text) : undefined;
  const wire = JSON.stringify({ id: `c-1.${seq}`, input: text, deadline: 1_800_000_000_000, ...(key ? { key } : {}) });
  const item = JSON.parse(wire) as { input: string; key?: string };
  if (item.key !== undefined && keyFromCanonicalInput(identity, item.input) !== item.key) throw new Error('unbound');
  const numbers = JSON.parse(item.input) as number[];
  writeTensor(numbers);
  return wire.length;
}

/**
 * The alternative that keeps JSON: the text embedded in the job's JSON as a
 * value, not an escaped string (what JSON.rawJSON would let BullMQ write;
 * Node 20 has it only behind a flag), so the worker's one JSON.parse of the
 * job yields the numbers. Simulated by concatenation.
 */
function rawJsonPath(input: number[], seq: number): number {
  const text = canonicalJson(input);
  const wire = `{"id":"c-1.${seq}","input":${text},"deadline":1800000000000}`;
  const item = JSON.parse(wire) as { input: number[] };
  writeTensor(item.input);
  return wire.length;
}

/** The same, compact; `typed`: the model opted in to Float64Array inputs (no Array.from). */
function compactPath(input: number[], cached: boolean, seq: number, typed: boolean): number {
  const numbers = flatNumbers(input) as Float64Array;
  const key = cached ? keyFromCanonicalInput(identity, f64Json(numbers)) : undefined;
  const wire = JSON.stringify({ id: `c-1.${seq}`, f64: encodeF64(numbers), deadline: 1_800_000_000_000, ...(key ? { key } : {}) });
  const item = JSON.parse(wire) as { f64: string; key?: string };
  const decoded = decodeF64(item.f64);
  if (typeof decoded === 'string') throw new Error(decoded);
  if (item.key !== undefined && keyFromCanonicalInput(identity, f64Json(decoded)) !== item.key) throw new Error('unbound');
  writeTensor(typed ? decoded : Array.from(decoded));
  return wire.length;
}

/** Items as a worker receives them (BullMQ's JSON of each), for the worker-only cases. */
const wiresJson = inputs.map((x, i) => JSON.stringify({ id: `c-1.${i}`, input: canonicalJson(x), deadline: 1_800_000_000_000 }));
const wiresCompact = inputs.map((x, i) => JSON.stringify({ id: `c-1.${i}`, f64: encodeF64(flatNumbers(x) as Float64Array), deadline: 1_800_000_000_000 }));

/** This process's CPU time, µs (user + system). */
function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/**
 * CPU µs per input of `fn` over MS ms of CPU time. CPU time, not wall time:
 * on a machine shared with other runs, wall time counts the time this
 * process waited for a core, which has nothing to do with the code.
 */
function time(fn: (input: number[], seq: number) => number): number {
  let n = 0;
  const t0 = cpuMicros();
  while (cpuMicros() - t0 < MS * 1000) {
    for (let k = 0; k < 64; k++, n++) sink += fn(inputs[n % POOL] as number[], n);
  }
  return (cpuMicros() - t0) / n;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

// Same values, same key: the benchmark measures equivalent work.
for (const input of inputs.slice(0, 4)) {
  if (canonicalJson(input) !== f64Json(flatNumbers(input) as Float64Array)) throw new Error('compact and JSON disagree');
}
const sample = inputs[0] as number[];
console.log(
  `one input of ${FLOATS} floats: item ${JSON.stringify({ input: canonicalJson(sample) }).length} bytes as JSON text, ` +
    `${JSON.stringify({ f64: encodeF64(flatNumbers(sample) as Float64Array) }).length} compact; node ${process.version}; ${PAIRS} interleaved pairs of ${MS} ms`,
);
/** [name, A, B]: A is the JSON way (unless the name says otherwise), B the compact one. */
const cases: Array<[string, (i: number[], s: number) => number, (i: number[], s: number) => number]> = [
  ['client only (validate, encode, item JSON)', (i, s) => JSON.stringify({ id: `c-1.${s}`, input: canonicalJson(i), deadline: 1_800_000_000_000 }).length, (i, s) => JSON.stringify({ id: `c-1.${s}`, f64: encodeF64(flatNumbers(i) as Float64Array), deadline: 1_800_000_000_000 }).length],
  [
    'worker only (item JSON, decode, tensor)',
    (_, s) => {
      const numbers = JSON.parse((JSON.parse(wiresJson[s % POOL] as string) as { input: string }).input) as number[];
      writeTensor(numbers);
      return numbers.length;
    },
    (_, s) => {
      const numbers = decodeF64((JSON.parse(wiresCompact[s % POOL] as string) as { f64: string }).f64) as Float64Array;
      tensor.set(numbers);
      return numbers.length;
    },
  ],
  ['uncached, model takes number[]', (i, s) => jsonPath(i, false, s), (i, s) => compactPath(i, false, s, false)],
  ['uncached, model takes Float64Array', (i, s) => jsonPath(i, false, s), (i, s) => compactPath(i, false, s, true)],
  ['uncached, vs JSON embedded unescaped (A)', (i, s) => rawJsonPath(i, s), (i, s) => compactPath(i, false, s, true)],
  ['cached (key + key check), Float64Array', (i, s) => jsonPath(i, true, s), (i, s) => compactPath(i, true, s, true)],
];
for (const [name, a, b] of cases) {
  for (let w = 0; w < 3; w++) time(a), time(b); // warm-up: both sides optimised before timing
  const as: number[] = [];
  const bs: number[] = [];
  const ratios: number[] = [];
  for (let p = 0; p < PAIRS; p++) {
    const ta = time(a);
    const tb = time(b);
    as.push(ta);
    bs.push(tb);
    ratios.push(tb / ta);
  }
  console.log(`  ${name.padEnd(42)} JSON text ${median(as).toFixed(2)} µs CPU  compact ${median(bs).toFixed(2)} µs  compact/JSON ${median(ratios).toFixed(3)} (pairs ${ratios.map((r) => r.toFixed(2)).join(' ')})`);
}
if (sink === -1) console.log(sink);

/**
 * What storing inputs as JSON values instead of strings of JSON would cost in
 * the client's `queue.add` path: BullMQ serialises a job's data with
 * JSON.stringify, once per add. An envelope of 256 items, each input 256
 * floats: today each input is a string (the canonical JSON text the client
 * has anyway, for its cache key and size check), so stringify escapes one
 * string per item; as values, it walks 65,536 numbers. Also the worker's
 * side: JSON.parse of the job data (then, today, one JSON.parse per input).
 *
 *   npx tsx packages/bench/src/micro/envelope-json-cost.ts [--items 256] [--floats 256] [--ms 2000]
 */
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { items: { type: 'string', default: '256' }, floats: { type: 'string', default: '256' }, ms: { type: 'string', default: '2000' } } });
const ITEMS = Number(values.items);
const FLOATS = Number(values.floats);
const MS = Number(values.ms);

let seed = 20240601;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
const inputs = Array.from({ length: ITEMS }, () => Array.from({ length: FLOATS }, rand));
const base = { v: 2, client: 'bench-1-1', modelVersion: '1', quantization: 'FP32' };
const asStrings = { ...base, items: inputs.map((input, i) => ({ id: `bench-1-1.${i}`, input: JSON.stringify(input), deadline: 1_800_000_000_000 })) };
const asValues = { ...base, items: inputs.map((input, i) => ({ id: `bench-1-1.${i}`, input, deadline: 1_800_000_000_000 })) };

let sink = 0;
function rate(fn: () => number): number {
  for (let i = 0; i < 20; i++) sink += fn(); // warm-up
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < MS) {
    sink += fn();
    n++;
  }
  return (performance.now() - t0) / n; // ms per call
}

const textS = JSON.stringify(asStrings);
const textV = JSON.stringify(asValues);
const rows: Array<[string, number]> = [];
for (let round = 0; round < 3; round++) {
  rows.push([`stringify, inputs as strings (round ${round + 1})`, rate(() => JSON.stringify(asStrings).length)]);
  rows.push([`stringify, inputs as values  (round ${round + 1})`, rate(() => JSON.stringify(asValues).length)]);
}
const parseS = rate(() => (JSON.parse(textS) as typeof asStrings).items.length);
const parseSItems = rate(() => (JSON.parse(textS) as typeof asStrings).items.reduce((n, it) => n + (JSON.parse(it.input) as number[]).length, 0));
const parseV = rate(() => (JSON.parse(textV) as typeof asValues).items.length);
console.log(`envelope: ${ITEMS} items x ${FLOATS} floats; job data ${(textS.length / 1024).toFixed(0)} KiB as strings, ${(textV.length / 1024).toFixed(0)} KiB as values`);
for (const [name, ms] of rows) console.log(`  ${name.padEnd(46)} ${ms.toFixed(3)} ms per add`);
console.log(`  worker: JSON.parse of the job, inputs as strings   ${parseS.toFixed(3)} ms (+ each input parsed: ${parseSItems.toFixed(3)} ms in all)`);
console.log(`  worker: JSON.parse of the job, inputs as values    ${parseV.toFixed(3)} ms`);
if (sink === -1) console.log(sink);

/**
 * Cost of the worker's input binding check (input-binding.ts): one SHA-256
 * of the key envelope per cached item, for a small input and for a 256-float
 * input (the ONNX demo's size). Run: npx tsx --conditions=source packages/worker/bench/input-binding.bench.ts
 */
import { canonicalJson, keyFromCanonicalInput, type ModelIdentity } from '@inferq/core';

const identity: ModelIdentity = { model: 'bench', modelVersion: '1', quantization: 'FP32' };
const inputs: Record<string, string> = {
  small: canonicalJson({ text: 'hello world', n: 42 }),
  floats256: canonicalJson(Array.from({ length: 256 }, (_, i) => Math.sin(i) * 1000)),
};
for (const [name, text] of Object.entries(inputs)) {
  const key = keyFromCanonicalInput(identity, text);
  const n = 200_000;
  for (let i = 0; i < 20_000; i++) keyFromCanonicalInput(identity, text);
  let ok = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) if (keyFromCanonicalInput(identity, text) === key) ok++;
  const ns = Number(process.hrtime.bigint() - t0) / n;
  console.log(`${name.padEnd(10)} ${String(text.length).padStart(5)} bytes: ${(ns / 1000).toFixed(2)} µs per item checked (${ok === n ? 'all bound' : 'MISMATCH'})`);
}

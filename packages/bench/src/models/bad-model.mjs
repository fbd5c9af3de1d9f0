/**
 * The bad-model scenario's model: 2 ms per call (a timer), except that some
 * inputs make it misbehave, chosen by a hash of the input so that every run
 * sees the same ones:
 * - a share BENCH_BAD_HANG_RATE hangs its call for BENCH_BAD_HANG_MS (far
 *   past the workers' --model-timeout-ms, then returns: the slot comes back);
 * - a share BENCH_BAD_THROW_RATE makes its call throw (a poison input).
 * `clean-model.mjs` is the same model with both rates 0 (the clean run).
 * Loaded by `inferq-worker --module <this file>`.
 */
const num = (name, dflt) => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name} must be a number >= 0, got '${process.env[name]}'`);
  return v;
};

/** 0..1 from the input's numbers (stable across processes and runs). */
export function inputFraction(input) {
  const a = Array.isArray(input) ? input : [Number(input) || 0];
  let h = 2166136261;
  for (const x of a) h = Math.imul(h ^ Math.round(Number(x) * 1e4), 16777619) >>> 0;
  return h / 4294967296;
}

export function badModel({ hangRate, throwRate, hangMs, costMs }) {
  return async function run(inputs) {
    const f = inputs.map(inputFraction);
    const hang = f.some((x) => x < hangRate);
    await new Promise((resolve) => setTimeout(resolve, hang ? hangMs : costMs));
    if (f.some((x) => x >= hangRate && x < hangRate + throwRate)) throw new Error('bad-model: this batch holds a poison input');
    return inputs;
  };
}

export default badModel({
  hangRate: num('BENCH_BAD_HANG_RATE', 0.0005),
  throwRate: num('BENCH_BAD_THROW_RATE', 0.01),
  hangMs: num('BENCH_BAD_HANG_MS', 3000),
  costMs: 2,
});

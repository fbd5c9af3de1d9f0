/**
 * What signing every result would cost (docs/security.md, "Results a client
 * accepts"): Ed25519 from node:crypto, per result payload, against the
 * ~20-45 µs of CPU a request costs each of a client and a worker today.
 * Run: npx tsx packages/core/bench/result-signature.bench.ts
 */
import { createHash, generateKeyPairSync, sign, verify } from 'node:crypto';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const payload = Buffer.from(`{"k":"${'a'.repeat(64)}","t":1796400000000,"ok":1,"worker":"host-1234-abcd","batchSize":64,"output":{"label":"positive","score":0.93}}`);
function time(name: string, n: number, fn: () => unknown): void {
  for (let i = 0; i < Math.min(n, 2000); i++) fn();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  console.log(`${name.padEnd(44)} ${(Number(process.hrtime.bigint() - t0) / n / 1000).toFixed(2)} µs`);
}
const sig = sign(null, payload, privateKey);
time('Ed25519 sign, one payload (worker)', 20_000, () => sign(null, payload, privateKey));
time('Ed25519 verify, one payload (client)', 20_000, () => verify(null, payload, publicKey, sig));
time('SHA-256 of the payload (per line under a batch signature)', 200_000, () => createHash('sha256').update(payload).digest());

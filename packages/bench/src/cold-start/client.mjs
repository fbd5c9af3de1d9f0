// One cold client for the cold-start section, run with plain `node` from
// dist/ (no tsx, no "source" condition): imports @inferq/client, sends one
// request that no cache can answer, prints `ANSWER <output>` and exits.
// Env: REDIS_URL, MODEL, PREFIX, INPUT.
import { InferenceClient } from '@inferq/client';

const client = new InferenceClient({ redis: process.env.REDIS_URL, model: process.env.MODEL, prefix: process.env.PREFIX });
const r = await client.infer(Number(process.env.INPUT), { useCache: false, timeoutMs: 30_000 });
process.stdout.write(`ANSWER ${JSON.stringify(r.output)}\n`);
await client.close();

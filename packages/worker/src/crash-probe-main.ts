/**
 * Entry of a crash probe (crash-probe.ts): a fresh process that loads the
 * model module named by INFERQ_PROBE_MODULE, says `LOADED`, runs the one
 * input read from stdin as its first and only model call, says
 * `RESULT <json>`, and exits 0. If the input kills it, it says nothing more:
 * the parent sees it die after `LOADED`. Nothing else enters its model.
 */
import type { Quantization } from '@inferq/core';
import { callModel } from '@inferq/core/protocol';
import { loadModelModule } from './model-module-loader.js';

async function readStdin(): Promise<string> {
  let text = '';
  process.stdin.setEncoding('utf8');
  for await (const chunk of process.stdin) text += chunk as string;
  return text;
}

async function main(): Promise<void> {
  const spec = process.env.INFERQ_PROBE_MODULE;
  if (!spec) {
    process.stdout.write('UNAVAILABLE no INFERQ_PROBE_MODULE\n');
    return;
  }
  const input = JSON.parse(await readStdin()) as unknown;
  const quantization = process.env.INFERQ_PROBE_QUANTIZATION as Quantization | undefined;
  let module;
  try {
    module = await loadModelModule(spec, quantization ? { quantization } : {});
    await module.init?.();
  } catch (err) {
    process.stdout.write(`UNAVAILABLE ${JSON.stringify((err as Error).message)}\n`);
    return;
  }
  process.stdout.write('LOADED\n');
  const r = await callModel(module.run as (inputs: unknown[]) => Promise<unknown[]>, [input], { model: 'probe' });
  const slot = r.ok ? r.slots[0] : undefined;
  const line = slot?.ok
    ? { ok: true, output: slot.output }
    : { ok: false, code: (r.ok ? slot?.error : r.error)?.code, message: (r.ok ? slot?.error : r.error)?.message };
  await new Promise<void>((resolve) => process.stdout.write(`RESULT ${JSON.stringify(line)}\n`, () => resolve()));
  await Promise.race([module.close?.(), new Promise((r) => setTimeout(r, 1000))]);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stdout.write(`UNAVAILABLE ${JSON.stringify(String((err as Error)?.message ?? err))}\n`);
    process.exit(0);
  },
);

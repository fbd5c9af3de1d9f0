/**
 * Optional CPU profile of a demo client process, for finding where the
 * client side of inferq spends its time under load:
 *
 *   INFERQ_DEMO_CPU_PROF=/tmp/prof pnpm demo
 *
 * writes one `client-<n>-<pid>.cpuprofile` per client process (open it in
 * Chrome DevTools or speedscope). Done with the inspector module because
 * `--cpu-prof` is not allowed in NODE_OPTIONS and the testkit spawns
 * children with fixed node flags.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Session } from 'node:inspector/promises';

export interface CpuProfiler {
  stop(): Promise<void>;
}

export async function startCpuProfile(name: string): Promise<CpuProfiler | undefined> {
  const dir = process.env.INFERQ_DEMO_CPU_PROF;
  if (!dir) return undefined;
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  return {
    async stop() {
      const { profile } = await session.post('Profiler.stop');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${name}-${process.pid}.cpuprofile`), JSON.stringify(profile));
      session.disconnect();
    },
  };
}

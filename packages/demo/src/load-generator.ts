/**
 * Drives one client's share of the workload against an `infer` function,
 * the same way in a client process (InferenceClient over Redis) and in
 * embedded mode (InferenceOptimizer in process).
 *
 * Two kinds of callers, because real traffic has both:
 *  - a closed loop: `inFlight` callers that each send the next request as
 *    soon as their previous one finished (backend jobs, a bounded pool of
 *    connections). They keep the system saturated, so throughput shows
 *    what inferq can do on this machine;
 *  - an open loop: independent callers arriving as a Poisson process at
 *    `openRatePerSec`, whatever the system's state (users). Their requests
 *    do not wait for earlier ones, so they see the queueing the closed loop
 *    causes.
 * Both take the next input from the same fixed schedule, so the set of
 * inputs (and their order of issue, closely) is the same on every run.
 */
import { ErrorCode } from '@inferq/core';
import type { Outcome, RequestRecord, Source } from './protocol.js';
import { deriveSeed, poissonGaps } from './workload.js';

/** What one successful call reports about itself. */
export interface CallResult {
  cached: boolean;
  coalesced: boolean;
  worker?: string;
  batchSize?: number;
}

export interface LoadOptions {
  client: number;
  /** Pool index of each request, in order of issue. */
  schedule: Uint32Array;
  inFlight: number;
  /** Open-loop arrivals per second for this client; 0 = closed loop only. */
  openRatePerSec: number;
  seed: number;
  /** Open-loop requests outstanding at most; past it, arrivals wait (so an overload cannot grow memory without bound). */
  maxOpenOutstanding?: number;
  /** Called once per finished request. */
  onRecord(record: RequestRecord): void;
}

/** Epoch ms with sub-ms resolution (performance.now is monotonic; timeOrigin anchors it to the wall clock). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export async function runLoad(call: (poolIndex: number) => Promise<CallResult>, o: LoadOptions): Promise<void> {
  let next = 0;
  const take = (): number | undefined => (next < o.schedule.length ? (o.schedule[next++] as number) : undefined);

  const one = async (poolIndex: number, source: Source): Promise<void> => {
    const start = nowMs();
    const t0 = performance.now();
    let record: RequestRecord;
    try {
      const r = await call(poolIndex);
      const outcome: Outcome = r.cached ? 'hit' : r.coalesced ? 'coalesced' : 'computed';
      record = { client: o.client, startMs: start, latencyMs: performance.now() - t0, outcome, source };
      if (r.worker !== undefined) record.worker = r.worker;
      if (r.batchSize !== undefined && r.batchSize > 0) record.batchSize = r.batchSize;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      const error = typeof code === 'string' ? code : (err as Error).name || 'Error';
      record = { client: o.client, startMs: start, latencyMs: performance.now() - t0, outcome: code === ErrorCode.TIMEOUT ? 'timeout' : 'error', source, error };
    }
    o.onRecord(record);
  };

  const closedLane = async (): Promise<void> => {
    for (let i = take(); i !== undefined; i = take()) await one(i, 'closed');
  };

  const openLoop = async (): Promise<void> => {
    if (!(o.openRatePerSec > 0)) return;
    const gap = poissonGaps(deriveSeed(o.seed, 500_000 + o.client), o.openRatePerSec);
    const cap = o.maxOpenOutstanding ?? 256;
    const outstanding = new Set<Promise<void>>();
    let due = performance.now() + gap();
    for (;;) {
      // The closed loop may take the last request while we sleep: look in short naps, not one long one.
      if (next >= o.schedule.length) {
        await Promise.all(outstanding);
        return;
      }
      const wait = due - performance.now();
      if (wait > 1) {
        await sleep(Math.min(wait, 50));
        continue;
      }
      // Issue every arrival that is due by now (timers are coarse; a Poisson process is bursty anyway).
      while (due <= performance.now()) {
        while (outstanding.size >= cap) await Promise.race(outstanding);
        const i = take();
        if (i === undefined) {
          await Promise.all(outstanding);
          return;
        }
        const p = one(i, 'open').finally(() => outstanding.delete(p));
        outstanding.add(p);
        due += gap();
      }
    }
  };

  await Promise.all([...Array.from({ length: o.inFlight }, closedLane), openLoop()]);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

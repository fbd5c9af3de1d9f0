/**
 * What the two ways of running the workload (distributed: Redis + worker
 * and client processes; embedded: one process, no Redis) share with the
 * orchestrator, so that it draws the same progress bar, prints the same
 * summary and writes the same report for both.
 */
import type { InferenceStats } from '@inferq/core';
import type { BatchItems } from './metrics.js';
import type { RequestRecord } from './protocol.js';
import type { EmbeddedCounts } from './summary.js';

export interface RunHooks {
  /** A line for the user about what is happening (startup phases). */
  status(message: string): void;
  /** The load started (every client is ready): the progress bar's clock starts here. */
  started(): void;
  /** Requests finished. */
  records(batch: readonly RequestRecord[]): void;
  /** Aborted on Ctrl-C or when the run's time bound passes. */
  signal: AbortSignal;
}

export interface RunResult {
  records: RequestRecord[];
  startupSeconds: number;
  redisStats?: InferenceStats;
  embedded?: EmbeddedCounts;
  batchItems?: BatchItems[];
  clientPids: Map<number, number>;
  workerPids: Map<string, number>;
  childErrorLogs: Array<{ name: string; lines: number; sample: string }>;
}

export interface ModeRunner {
  run(hooks: RunHooks): Promise<RunResult>;
  /** What the run is waiting for right now (for a timeout message). */
  describeWaiting(): string;
  /** Ends every child process (by pid) and releases resources. Idempotent; never throws. */
  shutdown(): Promise<void>;
}

/** Rejects with the signal's reason once it aborts (to race long waits against Ctrl-C and the time bound). */
export function aborted(signal: AbortSignal): Promise<never> {
  return new Promise<never>((_, reject) => {
    const fail = () => reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}

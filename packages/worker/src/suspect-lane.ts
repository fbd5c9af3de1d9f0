/**
 * The suspect lane: inputs that hung the model in an earlier try of their
 * job (hang-record.ts) run alone, one at a time, after the ordinary work in
 * hand, so that a wedging input takes the last free slot only when nothing
 * else needs it.
 */
import type { BatchOutcome, WorkItem } from './batch-pipeline.js';

export interface SuspectLaneOptions {
  /** Whether ordinary work is pending or running (the batcher's). */
  busy: () => boolean;
  /** Runs one input as a batch of one (through the model gate, with crash isolation on). */
  runAlone: (item: WorkItem) => Promise<BatchOutcome[]>;
  /** Longest wait for the ordinary work before a suspect runs anyway, in ms. */
  maxWaitMs?: number;
}

export class SuspectLane {
  /** A chain: each suspect starts after the one before returned or timed out. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: SuspectLaneOptions) {}

  /** Resolves once the input's result was delivered; rejects when delivery failed. */
  run(item: WorkItem): Promise<void> {
    const { busy, runAlone, maxWaitMs = 1000 } = this.opts;
    const turn = this.tail.then(async () => {
      for (let waited = 0; waited < maxWaitMs && busy(); waited += 20) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const outcomes = await runAlone(item);
      return outcomes[0];
    });
    // The lane moves on once this input's call returned or timed out, whatever its delivery does.
    this.tail = turn.catch(() => undefined);
    return turn.then((outcome) => outcome?.delivered);
  }
}

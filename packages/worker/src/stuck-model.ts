/**
 * A model call past `modelTimeoutMs` cannot be cancelled: it keeps its model
 * slot until it returns. This watch counts such calls and acts on the count:
 *
 * - every slot stuck: the worker takes no new job (BullMQ's pause stops
 *   fetching at once) until one returns, then takes jobs again;
 * - every slot stuck for `stuckExitFactor x modelTimeoutMs`: only a fresh
 *   process gets the slots back, so the worker leaves. The jobs in hand go
 *   back to the queue (`moveToWait`: not answered, no attempt used, not a
 *   stall, so crash isolation does not suspect them; their hang records tell
 *   the next worker what to run alone), crash records of calls in flight are
 *   taken back, then the worker stops and tells `onStuckExit`
 *   (inferq-worker exits with code 3 there).
 */
import { WaitingError, type Job } from 'bullmq';
import type { Logger } from '@inferq/core';

/** A job in hand, with what hands it back to the queue. */
export interface HeldJob {
  job: Job;
  token: string | undefined;
  /** Ends the job's processing without an answer (it went back to the queue). */
  handBack: (err: Error) => void;
}

export interface StuckModelWatchOptions {
  /** Model slots (`numWorkers`). */
  slots: number;
  modelTimeoutMs: number;
  stuckExitFactor: number;
  logger: Logger;
  /** Whether the worker is running (not stopping): only then it resumes or leaves. */
  running: () => boolean;
  pause: () => void;
  resume: () => void;
  /** Jobs in hand, handed back when leaving. */
  jobs: () => Iterable<HeldJob>;
  /** Takes back the crash records of calls in flight (crash isolation), before the jobs go back. */
  releaseRecords: () => Promise<void>;
  stop: () => Promise<void>;
  onStuckExit: ((info: { stuckMs: number; slots: number; handedBack: number }) => void) | undefined;
}

export class StuckModelWatch {
  /** Model calls past modelTimeoutMs that have not returned. */
  private calls = 0;
  /** When every slot became stuck; undefined while one is free. */
  private blockedSince: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private leaving = false;

  constructor(private readonly o: StuckModelWatchOptions) {}

  get stuckCalls(): number {
    return this.calls;
  }

  get since(): number | undefined {
    return this.blockedSince;
  }

  /** True while every model slot is stuck. */
  get blocked(): boolean {
    return this.calls >= this.o.slots;
  }

  /** How long every slot may stay stuck before the worker leaves (0: never). */
  get limitMs(): number {
    return this.o.modelTimeoutMs > 0 ? this.o.stuckExitFactor * this.o.modelTimeoutMs : 0;
  }

  /** The model runner's count of stuck calls changed. */
  update(stuck: number): void {
    const wasBlocked = this.blocked;
    this.calls = stuck;
    const blocked = this.blocked;
    if (blocked === wasBlocked) return;
    this.blockedSince = blocked ? Date.now() : undefined;
    if (blocked) {
      const limitMs = this.limitMs;
      this.o.logger.error({ stuck, stuckExitInMs: limitMs || undefined }, 'every model slot is stuck past modelTimeoutMs; taking no new jobs until the model returns');
      this.o.pause();
      if (limitMs > 0) {
        this.timer = setTimeout(() => void this.leave(), limitMs);
        this.timer.unref();
      }
    } else {
      clearTimeout(this.timer);
      this.o.logger.warn({ stuck }, 'the model returned; taking jobs again');
      if (this.o.running()) this.o.resume();
    }
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private async leave(): Promise<void> {
    const { o } = this;
    if (this.leaving || !o.running() || !this.blocked) return;
    this.leaving = true;
    const stuckMs = Date.now() - (this.blockedSince ?? Date.now());
    const jobs = [...o.jobs()];
    o.logger.error(
      { stuckMs, stuckCalls: this.calls, slots: o.slots, modelTimeoutMs: o.modelTimeoutMs, stuckExitFactor: o.stuckExitFactor, jobs: jobs.length },
      'every model slot stuck for stuckExitFactor x modelTimeoutMs; handing the jobs back and leaving (inferq-worker exits with code 3)',
    );
    await o.releaseRecords();
    let handedBack = 0;
    await Promise.all(
      jobs.map(async ({ job, token, handBack }) => {
        try {
          await job.moveToWait(token);
          handedBack++;
          handBack(new WaitingError());
        } catch (err) {
          o.logger.warn({ err, jobId: job.id }, 'handing a job back failed; BullMQ runs it again once its lock expires');
        }
      }),
    );
    void o.stop();
    try {
      o.onStuckExit?.({ stuckMs, slots: o.slots, handedBack });
    } catch (err) {
      o.logger.warn({ err }, 'the onStuckExit observer threw');
    }
  }
}

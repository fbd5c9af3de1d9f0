/**
 * A running worker's entry in its model's registry of live workers
 * (worker-registry.ts in core): beaten once before the worker agrees on the
 * model's shard count and takes jobs, then every WORKER_BEAT_MS until
 * stop(), which removes it. `inferq set-shards` refuses while any entry is
 * live: a worker keeps consuming the shards it started with, so a count
 * changed under it would strand every request of clients started with the
 * new one.
 *
 * A failed renewal is logged (throttled) and retried on the next beat; a
 * worker cut off from Redis for longer than WORKER_BEAT_TTL_MS drops out of
 * the registry, as it cannot take jobs either.
 */
import { RedisUnavailableError, settledWithin, throttledLog, type Logger, type RedisClient } from '@inferq/core';
import { WORKER_BEAT_MS, WORKER_BEAT_TTL_MS, beatWorker, forgetWorker } from '@inferq/core/protocol';

/** Longest wait for the removal at stop: a worker stopping while Redis is down must still stop. */
const FORGET_BOUND_MS = 1000;

export class WorkerHeartbeat {
  private timer: NodeJS.Timeout | undefined;
  private readonly logFailure: (obj: Record<string, unknown>, msg: string) => void;

  constructor(
    private readonly redis: RedisClient,
    private readonly workersKey: string,
    private readonly workerId: string,
    private readonly logger: Logger,
  ) {
    this.logFailure = throttledLog(logger, 'warn');
  }

  /** Lists the worker now (rejects with a RedisUnavailableError if Redis refuses), then renews it every WORKER_BEAT_MS. */
  async start(): Promise<void> {
    try {
      await beatWorker(this.redis, this.workersKey, this.workerId, WORKER_BEAT_TTL_MS);
    } catch (err) {
      throw new RedisUnavailableError(`Listing worker ${this.workerId} among the model's live workers (${this.workersKey}) failed: ${(err as Error).message}`, { cause: err, details: { key: this.workersKey } });
    }
    this.timer = setInterval(() => {
      beatWorker(this.redis, this.workersKey, this.workerId, WORKER_BEAT_TTL_MS).catch((err: unknown) =>
        this.logFailure({ err, key: this.workersKey }, 'renewing the worker heartbeat failed; set-shards may not see this worker'),
      );
    }, WORKER_BEAT_MS);
    this.timer.unref();
  }

  /** Stops beating and removes the entry (bounded; past the bound it expires by itself). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const removal = forgetWorker(this.redis, this.workersKey, this.workerId).catch((err: unknown) =>
      this.logger.warn({ err, key: this.workersKey }, `removing the worker heartbeat failed; it expires within ${WORKER_BEAT_TTL_MS} ms`),
    );
    if (!(await settledWithin(removal, FORGET_BOUND_MS))) this.logger.warn({ key: this.workersKey }, `removing the worker heartbeat timed out; it expires within ${WORKER_BEAT_TTL_MS} ms`);
  }
}

/**
 * A stage that sends what accumulates, with at most `maxInFlight` sends in
 * flight (default 1).
 *
 * Items pushed in one macrotask go out together on the next one
 * (setImmediate rather than nextTick: callers that `await` between calls in
 * the same macrotask still land in the same send). While the sends in flight
 * are at the limit, new items wait and go out together as soon as one finishes — the
 * way Nagle's algorithm or ioredis auto-pipelining coalesce. Under light load
 * every item goes out at once; under heavy load one round trip (and a
 * library's per-call cost, like BullMQ's addBulk) is shared by many items.
 */
export class CoalescingStage<T> {
  private pending: T[] = [];
  private scheduled = false;
  private running = 0;

  constructor(
    private readonly send: (items: T[]) => Promise<void>,
    private readonly onError: (err: unknown, items: T[]) => void,
    private readonly maxInFlight = 1,
  ) {}

  push(item: T): void {
    this.pending.push(item);
    this.schedule();
  }

  /** True while nothing is pending or in flight. */
  get idle(): boolean {
    return this.running === 0 && !this.scheduled && this.pending.length === 0;
  }

  private schedule(): void {
    if (this.scheduled || this.running >= this.maxInFlight) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const items = this.pending;
      this.pending = [];
      if (items.length === 0) return;
      this.running++;
      this.send(items)
        .catch((err: unknown) => this.onError(err, items))
        .finally(() => {
          this.running--;
          if (this.pending.length > 0) this.schedule();
        });
    });
  }
}

/**
 * The items a batcher holds before they are batched, in the order batches
 * take them: lowest `priority` first, arrival order among equals. The oldest
 * item (whatever its priority) is known too, because the age bound of a
 * batch (`batchTimeoutMs`) is on the oldest item waiting, not on the next one
 * to go.
 *
 * One FIFO lane per priority value, lanes kept sorted: adding, removing (a
 * timed-out item) and taking are O(1) per item plus a binary search when a
 * new priority value appears. A batcher whose items all have one priority
 * (the embedded optimizer; a fleet without priorities) pays a Map lookup per
 * item over a plain Set.
 */
export interface QueuedItem {
  /** Lower goes first (a BullMQ job priority in workers: protocol/priority.ts). */
  readonly priority: number;
}

export class PendingQueue<T extends QueuedItem> {
  /** Every item, in arrival order: the first is the oldest. */
  private readonly all = new Set<T>();
  private readonly lanes = new Map<number, Set<T>>();
  /** The lanes' priorities, ascending. */
  private readonly order: number[] = [];

  get size(): number {
    return this.all.size;
  }

  add(item: T): void {
    this.all.add(item);
    let lane = this.lanes.get(item.priority);
    if (!lane) {
      lane = new Set();
      this.lanes.set(item.priority, lane);
      this.order.splice(this.insertionPoint(item.priority), 0, item.priority);
    }
    lane.add(item);
  }

  /** Removes an item; false when it was not here. */
  delete(item: T): boolean {
    if (!this.all.delete(item)) return false;
    const lane = this.lanes.get(item.priority);
    if (lane) {
      lane.delete(item);
      if (lane.size === 0) {
        this.lanes.delete(item.priority);
        this.order.splice(this.insertionPoint(item.priority), 1);
      }
    }
    return true;
  }

  /** The priority that goes next (the lowest value held); undefined when empty. */
  firstPriority(): number | undefined {
    return this.order[0];
  }

  /** The item that has waited longest. */
  oldest(): T | undefined {
    return this.all.values().next().value;
  }

  /**
   * Removes and returns up to `max` items in serving order, skipping those
   * `accept` turns down (they stay, in place). `accept` is told each item in
   * order and may count what it accepted. With `oldestFirst`, the oldest item
   * is offered before the lanes (a starved item's guaranteed place).
   */
  take(max: number, accept?: (item: T) => boolean, oldestFirst = false): T[] {
    const out: T[] = [];
    const first = oldestFirst ? this.oldest() : undefined;
    if (first !== undefined && max > 0 && (!accept || accept(first))) out.push(first);
    for (const p of this.order) {
      for (const item of this.lanes.get(p) as Set<T>) {
        if (out.length >= max) break;
        if (item === first) continue;
        if (!accept || accept(item)) out.push(item);
      }
      if (out.length >= max) break;
    }
    for (const item of out) this.delete(item);
    return out;
  }

  /** Every item, in arrival order. */
  values(): IterableIterator<T> {
    return this.all.values();
  }

  clear(): void {
    this.all.clear();
    this.lanes.clear();
    this.order.length = 0;
  }

  /** The index of the first lane priority >= p. */
  private insertionPoint(p: number): number {
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.order[mid] as number) < p) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

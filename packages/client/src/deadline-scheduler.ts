/**
 * Fires a callback when an entry's deadline passes, with ONE timer for all
 * pending requests of a client instead of one `setTimeout` each (at tens of
 * thousands of requests per second a timer per request costs more than the
 * request's own bookkeeping).
 *
 * Requests with the same timeout arrive in deadline order, so each distinct
 * timeout gets a FIFO; the timer is armed for the earliest FIFO head.
 * Cancelled entries are dropped lazily when they reach a head.
 */

export interface DeadlineEntry {
  /** Epoch ms. */
  readonly deadline: number;
  /** True once settled; the scheduler then skips it. */
  readonly done: boolean;
}

class Fifo<T> {
  private items: T[] = [];
  private head = 0;
  get size(): number {
    return this.items.length - this.head;
  }
  push(item: T): void {
    this.items.push(item);
  }
  peek(): T | undefined {
    return this.items[this.head];
  }
  shift(): T | undefined {
    const item = this.items[this.head];
    if (item === undefined) return undefined;
    this.items[this.head] = undefined as unknown as T;
    this.head++;
    // Compact once the dead prefix dominates, so memory follows the live size.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

export class DeadlineScheduler<E extends DeadlineEntry> {
  private readonly fifos = new Map<number, Fifo<E>>();
  private timer: NodeJS.Timeout | undefined;
  private armedFor = Infinity;

  constructor(private readonly onExpire: (entry: E) => void) {}

  /** `timeoutMs` groups entries whose deadlines grow in insertion order. */
  add(entry: E, timeoutMs: number): void {
    let fifo = this.fifos.get(timeoutMs);
    if (!fifo) {
      fifo = new Fifo<E>();
      this.fifos.set(timeoutMs, fifo);
    }
    fifo.push(entry);
    if (entry.deadline < this.armedFor) this.arm(entry.deadline);
  }

  /** Drops every entry and the timer (on close). */
  clear(): void {
    this.fifos.clear();
    this.disarm();
  }

  private arm(deadline: number): void {
    this.disarm();
    this.armedFor = deadline;
    this.timer = setTimeout(() => this.fire(), Math.max(0, deadline - Date.now()));
    // A pending request keeps the process alive through its promise, not through this timer.
    this.timer.unref();
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    const now = Date.now();
    let next = Infinity;
    for (const [timeout, fifo] of this.fifos) {
      for (let e = fifo.peek(); e !== undefined; e = fifo.peek()) {
        if (e.done) {
          fifo.shift();
        } else if (e.deadline <= now) {
          fifo.shift();
          this.onExpire(e);
        } else {
          next = Math.min(next, e.deadline);
          break;
        }
      }
      if (fifo.size === 0) this.fifos.delete(timeout);
    }
    if (next < Infinity) this.arm(next);
  }
}

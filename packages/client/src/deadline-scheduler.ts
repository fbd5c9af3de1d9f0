/**
 * Fires a callback when an entry's deadline passes, with ONE timer for all
 * pending requests of a client instead of one `setTimeout` each (at tens of
 * thousands of requests per second a timer per request costs more than the
 * request's own bookkeeping).
 *
 * A binary min-heap on the deadline, with each entry's position kept so that
 * a request that settles leaves at once (`remove`, O(log n)): memory follows
 * the requests still waiting, not every request made within the longest
 * timeout (an answered request with a 60 s timeout no longer holds its
 * input for 60 s), and a fire costs O(log n) per expired entry whatever
 * mix of timeouts is pending. Entries marked `done` without `remove` are
 * skipped when they reach the top.
 */

export interface DeadlineEntry {
  /** Epoch ms. */
  readonly deadline: number;
  /** True once settled; the scheduler then skips it. */
  readonly done: boolean;
}

/** setTimeout's longest delay; a later deadline re-arms when this one fires. */
const MAX_TIMER_MS = 2_147_483_647;

/** A heap slot: the entry, its insertion order (ties fire first in, first out) and its position. */
interface Node<E> {
  readonly entry: E;
  readonly seq: number;
  at: number;
}

export class DeadlineScheduler<E extends DeadlineEntry> {
  private readonly heap: Node<E>[] = [];
  private readonly nodes = new Map<E, Node<E>>();
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private armedFor = Infinity;

  constructor(private readonly onExpire: (entry: E) => void) {}

  /** Entries waiting. */
  get size(): number {
    return this.heap.length;
  }

  /** Adds an entry (the second argument is accepted for callers that pass the timeout; it is not needed). */
  add(entry: E, _timeoutMs?: number): void {
    if (this.nodes.has(entry)) return;
    const node: Node<E> = { entry, seq: this.seq++, at: this.heap.length };
    this.heap.push(node);
    this.nodes.set(entry, node);
    this.up(node.at);
    if (entry.deadline < this.armedFor) this.arm(entry.deadline);
  }

  /** Removes a settled entry at once; the timer follows the new earliest deadline lazily. */
  remove(entry: E): void {
    const node = this.nodes.get(entry);
    if (node === undefined) return;
    this.nodes.delete(entry);
    const last = this.heap.pop() as Node<E>;
    if (node.at < this.heap.length) {
      this.heap[node.at] = last;
      last.at = node.at;
      this.down(last.at);
      this.up(last.at);
    }
    if (this.heap.length === 0) this.disarm();
  }

  /** Drops every entry and the timer (on close). */
  clear(): void {
    this.heap.length = 0;
    this.nodes.clear();
    this.disarm();
  }

  private arm(deadline: number): void {
    this.disarm();
    this.armedFor = deadline;
    this.timer = setTimeout(() => this.fire(), Math.min(MAX_TIMER_MS, Math.max(0, deadline - Date.now())));
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
    for (let top = this.heap[0]?.entry; top !== undefined && (top.done || top.deadline <= now); top = this.heap[0]?.entry) {
      this.remove(top);
      if (!top.done) this.onExpire(top);
    }
    const next = this.heap[0];
    if (next !== undefined) this.arm(next.entry.deadline);
  }

  private before(a: Node<E>, b: Node<E>): boolean {
    return a.entry.deadline < b.entry.deadline || (a.entry.deadline === b.entry.deadline && a.seq < b.seq);
  }

  private place(node: Node<E>, at: number): void {
    this.heap[at] = node;
    node.at = at;
  }

  private up(i: number): void {
    const node = this.heap[i] as Node<E>;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = this.heap[p] as Node<E>;
      if (!this.before(node, parent)) break;
      this.place(parent, i);
      i = p;
    }
    this.place(node, i);
  }

  private down(i: number): void {
    const n = this.heap.length;
    const node = this.heap[i] as Node<E>;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.before(this.heap[r] as Node<E>, this.heap[l] as Node<E>) ? r : l;
      const child = this.heap[c] as Node<E>;
      if (!this.before(child, node)) break;
      this.place(child, i);
      i = c;
    }
    this.place(node, i);
  }
}

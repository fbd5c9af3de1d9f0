/**
 * Who may be in the model at once, in one worker process: any number of
 * ordinary batches (`shared`), or one isolated call alone (`alone`, crash
 * isolation) — so that when the process dies during an isolated call, the
 * input in it is the only one that can have killed it.
 *
 * A call alone waits for the batches in the model to return and keeps new
 * ones out until it is done. Calls alone marked `last` (inputs already seen
 * in the model when a worker died) go only when nothing else waits, so that
 * the innocent work a worker holds is done before it risks another crash.
 *
 * On the ordinary path (no isolated call held or waiting) `shared` costs a
 * counter and a `finally`.
 */

type Waiter = { kind: 'shared' | 'alone' | 'last'; grant: () => void };

export class ModelGate {
  /** Ordinary batches in the model. */
  private inShared = 0;
  /** An isolated call holds the model. */
  private held = false;
  private readonly waiting: Waiter[] = [];

  /** Runs `fn` (an ordinary batch): at once, unless an isolated call holds or waits for the model. */
  async shared<T>(fn: () => Promise<T>): Promise<T> {
    if (this.held || this.waiting.length > 0) await this.enqueue('shared');
    else this.inShared++;
    try {
      return await fn();
    } finally {
      this.inShared--;
      this.pump();
    }
  }

  /** Runs `fn` with nothing else in the model; `last`: only once nothing else waits either. */
  async alone<T>(fn: () => Promise<T>, options: { last?: boolean } = {}): Promise<T> {
    await this.enqueue(options.last ? 'last' : 'alone');
    try {
      return await fn();
    } finally {
      this.held = false;
      this.pump();
    }
  }

  /** Calls waiting for the model (for tests and logs). */
  get waiters(): number {
    return this.waiting.length;
  }

  private enqueue(kind: Waiter['kind']): Promise<void> {
    return new Promise<void>((grant) => {
      this.waiting.push({ kind, grant });
      this.pump();
    });
  }

  /** Grants in arrival order, `last` ones after everything else; an isolated call only when the model is empty. */
  private pump(): void {
    while (!this.held && this.waiting.length > 0) {
      let i = this.waiting.findIndex((w) => w.kind !== 'last');
      if (i < 0) i = 0;
      const w = this.waiting[i] as Waiter;
      if (w.kind === 'shared') {
        this.waiting.splice(i, 1);
        this.inShared++;
        w.grant();
        continue;
      }
      if (this.inShared > 0) return;
      this.waiting.splice(i, 1);
      this.held = true;
      w.grant();
      return;
    }
  }
}

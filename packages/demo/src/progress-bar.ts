/**
 * A one-line progress bar on stderr (stdout stays clean for the summary,
 * so `pnpm demo > out.txt` keeps only the result). Hand-written: it is a
 * few lines, and a dependency would be more code than it replaces.
 *
 * On a terminal it redraws in place; when stderr is a file or a pipe (CI
 * logs) it prints a plain line every few seconds instead of hundreds of
 * carriage returns.
 */

export interface ProgressState {
  done: number;
  total: number;
  hits: number;
  failed: number;
  elapsedMs: number;
}

export class ProgressBar {
  private readonly tty: boolean;
  private lastPlainAt = -Infinity;
  private lastWidth = 0;
  private lastDone = 0;
  private lastAt = 0;
  private rate = 0;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly plainEveryMs = 3000,
  ) {
    this.tty = stream.isTTY === true;
  }

  update(s: ProgressState): void {
    // Recent rate (smoothed), not the average since the start: it shows slowdowns as they happen.
    const dt = s.elapsedMs - this.lastAt;
    if (dt >= 150) {
      const instant = ((s.done - this.lastDone) * 1000) / dt;
      this.rate = this.lastAt === 0 ? instant : 0.6 * this.rate + 0.4 * instant;
      this.lastDone = s.done;
      this.lastAt = s.elapsedMs;
    }
    if (this.tty) {
      const line = this.render(s, Math.max(10, Math.min(40, (this.stream.columns ?? 100) - 62)));
      this.stream.write(`\r${line}${' '.repeat(Math.max(0, this.lastWidth - line.length))}`);
      this.lastWidth = line.length;
    } else if (s.elapsedMs - this.lastPlainAt >= this.plainEveryMs) {
      this.lastPlainAt = s.elapsedMs;
      this.stream.write(`${this.render(s, 20)}\n`);
    }
  }

  /** Draws the final state and ends the line. */
  finish(s: ProgressState): void {
    if (this.tty) {
      this.update(s);
      this.stream.write('\n');
    } else {
      this.stream.write(`${this.render(s, 20)}\n`);
    }
  }

  private render(s: ProgressState, width: number): string {
    const frac = s.total > 0 ? Math.min(1, s.done / s.total) : 0;
    const full = Math.round(frac * width);
    const bar = `${'█'.repeat(full)}${'░'.repeat(width - full)}`;
    const pct = `${(frac * 100).toFixed(0).padStart(3)}%`;
    const hitRate = s.done > 0 ? `${((s.hits / s.done) * 100).toFixed(0)}% hits` : '';
    const remaining = s.total - s.done;
    const eta = this.rate > 1 && remaining > 0 ? ` eta ${Math.ceil(remaining / this.rate)}s` : '';
    const failed = s.failed > 0 ? ` ${s.failed} failed` : '';
    return `${bar} ${pct} ${s.done}/${s.total}  ${Math.round(this.rate)} req/s  ${hitRate}${failed}  ${(s.elapsedMs / 1000).toFixed(1)}s${eta}`;
  }
}

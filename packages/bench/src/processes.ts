/**
 * The child processes of one scenario: spawned through testkit's spawnNode,
 * every wait bounded by a timeout, every process ended by pid at the end of
 * the scenario (SIGTERM, SIGKILL after a short grace), whether it passed,
 * failed or hung. A process that exits before the parent is done with it
 * fails the scenario at once instead of leaving the parent waiting.
 */
import { spawnNode, type SpawnedProcess } from '@inferq/testkit';

export interface BenchProcess {
  readonly label: string;
  readonly role: 'client' | 'worker';
  readonly proc: SpawnedProcess;
  /** Set once its result was read: a client exits by itself after printing it. */
  done: boolean;
}

/** pino's numeric levels: 40 warn, 50 error, 60 fatal. */
const PINO_LEVEL = /"level":(\d+)/;

export interface StderrDigest {
  warnings: number;
  errors: number;
  /** Other stderr lines (stack traces, BullMQ or Node warnings). */
  other: number;
  samples: string[];
}

export class ProcessSet {
  readonly all: BenchProcess[] = [];
  private readonly ended: Promise<never>[] = [];

  /**
   * @param finalLine - a line after which the process may exit by itself (a client's RESULT).
   */
  spawn(label: string, role: BenchProcess['role'], script: string, args: string[], env: NodeJS.ProcessEnv, finalLine?: RegExp): BenchProcess {
    const p: BenchProcess = { label, role, proc: spawnNode(script, args, env), done: false };
    this.all.push(p);
    const ended = p.proc.exited.then(async ({ code, signal }): Promise<never> => {
      // 'exit' can come before the last stdout lines were parsed: wait for stdout to close.
      await stdoutClosed(p.proc, 1000);
      if (p.done || (finalLine && p.proc.lines.some((l) => finalLine.test(l)))) return new Promise<never>(() => undefined); // expected: never settles
      throw new Error(`${label} (pid ${p.proc.pid}) exited early (code ${code}, signal ${signal}); stderr:\n${tail(p.proc.stderr(), 1500)}`);
    });
    ended.catch(() => undefined); // observed through unexpectedExit(); never an unhandled rejection
    this.ended.push(ended);
    return p;
  }

  /** Rejects as soon as any process exits before it was done. Use in Promise.race with every wait. */
  unexpectedExit(): Promise<never> {
    const race = Promise.race(this.ended);
    race.catch(() => undefined); // observed by whoever races it
    return race;
  }

  /** Ends every process (by pid), in parallel; resolves when all have exited. */
  async endAll(graceMs: number): Promise<void> {
    for (const p of this.all) p.done = true;
    await Promise.all(this.all.map((p) => p.proc.stop(graceMs)));
  }

  /** Warning and error lines the processes of `role` wrote to stderr (pino JSON or plain text). */
  stderrDigest(role: BenchProcess['role']): StderrDigest {
    const digest: StderrDigest = { warnings: 0, errors: 0, other: 0, samples: [] };
    for (const p of this.all.filter((x) => x.role === role)) {
      for (const line of p.proc.stderr().split('\n')) {
        if (!line.trim()) continue;
        const level = Number(PINO_LEVEL.exec(line)?.[1] ?? NaN);
        if (level >= 50) digest.errors++;
        else if (level >= 40) digest.warnings++;
        else if (Number.isNaN(level)) digest.other++;
        else continue;
        if (digest.samples.length < 3) digest.samples.push(`${p.label}: ${line.slice(0, 400)}`);
      }
    }
    return digest;
  }
}

function stdoutClosed(proc: SpawnedProcess, maxMs: number): Promise<void> {
  const out = proc.child.stdout;
  if (!out || out.closed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const t = setTimeout(resolve, maxMs);
    out.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** Resolves with `promise`, or rejects after `ms` with a message saying what was awaited. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function tail(text: string, chars: number): string {
  return text.length <= chars ? text : `...${text.slice(-chars)}`;
}

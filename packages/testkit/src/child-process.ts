/**
 * Spawns project processes for multi-process tests, demo and benchmark:
 * TypeScript entry points run through tsx with the "source" export condition
 * (so @inferq/* packages resolve to their sources, no build needed), stdout
 * parsed line by line, and every child ended by pid (SIGTERM, then SIGKILL
 * after a grace period).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The CLIs' TypeScript sources: what tests, the demo and the bench run (through tsx, from sources). */
export const WORKER_CLI = fileURLToPath(new URL('../../worker/src/cli.ts', import.meta.url));
export const CLIENT_CLI = fileURLToPath(new URL('../../client/src/cli.ts', import.meta.url));
/** The published bins: plain Node on dist/ (run `pnpm build` first). */
export const WORKER_BIN = fileURLToPath(new URL('../../worker/bin/inferq-worker.mjs', import.meta.url));
export const CLIENT_BIN = fileURLToPath(new URL('../../client/bin/inferq.mjs', import.meta.url));

/** Node flags that run a TypeScript entry point from the workspace sources. */
export const SOURCE_NODE_ARGS: readonly string[] = Object.freeze(['--conditions=source', '--import', 'tsx']);

export interface SpawnedProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** stdout lines so far. */
  readonly lines: string[];
  /** stderr text so far (bounded). */
  stderr(): string;
  /** Resolves with the first stdout line matching, rejects on exit or timeout. */
  waitForLine(match: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves with the exit code (or signal) once the process ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL now. */
  kill(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** Runs `node <script> ...args`; `.ts` scripts go through tsx, on the workspace sources (SOURCE_NODE_ARGS). */
export function spawnNode(script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): SpawnedProcess {
  const nodeArgs = script.endsWith('.ts') ? [...SOURCE_NODE_ARGS, script, ...args] : [script, ...args];
  const child = spawn(process.execPath, nodeArgs, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not spawn ${script}`);
  live.add(child);
  const lines: string[] = [];
  const waiters: Array<{ match: RegExp; resolve: (l: string) => void }> = [];
  let err = '';
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.match.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    if (err.length > 200_000) err = err.slice(-100_000);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  const stop = async (graceMs = 10_000) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const r = await exited;
      clearTimeout(t);
      return r;
    }
    return exited;
  };
  return {
    child,
    pid: child.pid,
    lines,
    stderr: () => err,
    exited,
    stop,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    waitForLine(match, timeoutMs = 30_000) {
      const already = lines.find((l) => match.test(l));
      if (already) return Promise.resolve(already);
      return new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`timed out waiting for ${match} from ${script}; stderr:\n${err.slice(-4000)}`)), timeoutMs);
        const w = {
          match,
          resolve: (l: string) => {
            clearTimeout(t);
            resolve(l);
          },
        };
        waiters.push(w);
        void exited.then(({ code, signal }) => {
          clearTimeout(t);
          reject(new Error(`${script} exited (code ${code}, signal ${signal}) before printing ${match}; stderr:\n${err.slice(-4000)}`));
        });
      });
    },
  };
}

export interface WorkerProcessOptions {
  redisUrl: string;
  model: string;
  module: string;
  prefix?: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** The entry point: WORKER_CLI (default: the sources, through tsx) or WORKER_BIN (dist/, after a build). */
  entry?: string;
}

/** Starts `inferq-worker` (the real CLI) and waits until it takes jobs. */
export async function startWorkerProcess(o: WorkerProcessOptions): Promise<SpawnedProcess & { workerId: string }> {
  const args = ['--model', o.model, '--module', o.module, '--redis', o.redisUrl, ...(o.prefix ? ['--prefix', o.prefix] : []), ...(o.args ?? [])];
  const p = spawnNode(o.entry ?? WORKER_CLI, args, o.env);
  let line: string;
  try {
    line = await p.waitForLine(/^READY /, 60_000);
  } catch (err) {
    await p.kill(); // never leave a worker that did not get ready
    throw err;
  }
  return Object.assign(p, { workerId: line.slice('READY '.length) });
}

/**
 * Stats a client buffered (`statsFlushIntervalMs`) reach Redis when its
 * process ends without `close()` (docs/process-lifecycle.md). An open client
 * keeps its process alive (its connections, the blocking inbox read), so
 * `beforeExit` never comes while it is open; a process with an open client
 * ends one of two ways, and each gets a flush:
 *
 * - `process.exit()` (the application's, or after its own signal handler):
 *   the `exit` event allows no asynchronous work, so the stats are written
 *   synchronously onto the socket (StatsRecorder.flushNow), which the kernel
 *   delivers after the process is gone;
 * - SIGTERM / SIGINT (main thread only). When the application listens for
 *   the signal itself, the signal is the application's: we only hand the
 *   stats to the socket, at once, and do nothing else. When nobody else
 *   listens, Node's default would have ended the process at once; our
 *   listener suppresses that default, so we flush, wait for Redis's reply
 *   (at most SIGNAL_FLUSH_MS), remove our listener and raise the same signal
 *   again: the process still dies by it (exit status 128 + n), a round trip
 *   later. We never call process.exit.
 *
 * One set of process listeners for every client of the process, present only
 * while some client is open (`close()` unregisters).
 */
import { isMainThread } from 'node:worker_threads';

/** What a client registers: its stats recorder. */
export interface ExitFlushable {
  flushNow(): Promise<void>;
}

/** Longest a signal waits for the stats reply before the process dies by it. */
export const SIGNAL_FLUSH_MS = 1000;

const SIGNALS = ['SIGTERM', 'SIGINT'] as const;
type Signal = (typeof SIGNALS)[number];

const live = new Set<ExitFlushable>();

function flushAll(): Promise<void> {
  return Promise.all([...live].map((r) => r.flushNow())).then(() => undefined);
}

const onExit = (): void => void flushAll();

const onSignal: Record<Signal, () => void> = {
  SIGTERM: () => handleSignal('SIGTERM'),
  SIGINT: () => handleSignal('SIGINT'),
};

function handleSignal(signal: Signal): void {
  const flushed = flushAll();
  // Another listener: the application handles the signal (and decides when to exit).
  if (process.listenerCount(signal) > 1) return;
  // Nobody else: do what Node's default would have done, once the stats are in.
  process.removeListener(signal, onSignal[signal]);
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, SIGNAL_FLUSH_MS)));
  void Promise.race([flushed, bound]).then(() => {
    clearTimeout(timer);
    process.kill(process.pid, signal);
  });
}

function install(): void {
  process.on('exit', onExit);
  if (isMainThread) for (const s of SIGNALS) process.on(s, onSignal[s]);
}

function uninstall(): void {
  process.removeListener('exit', onExit);
  for (const s of SIGNALS) process.removeListener(s, onSignal[s]);
}

/** Flushes `recorder` when the process ends; returns the function that stops it (call it on close). */
export function flushOnExit(recorder: ExitFlushable): () => void {
  if (live.size === 0) install();
  live.add(recorder);
  return () => {
    if (!live.delete(recorder)) return;
    if (live.size === 0) uninstall();
  };
}

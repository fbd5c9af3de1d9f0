/**
 * The closed-loop load generator inside each client process.
 *
 * `inFlight` loops each send one request, wait for its result, and send the
 * next at once (closed loop: the offered load adapts to the system, so a slow
 * system is measured at its capacity instead of drowning in a backlog).
 * Every process waits for the parent's start signal, so all clients of a
 * scenario share one warm-up and one measured window; a request counts in the
 * window when it COMPLETES inside it. At the end of the window the process
 * prints one `RESULT {json}` line (counts and latency histograms) and exits
 * without draining: what is still in flight belongs to no window, and the
 * parent flushes Redis after the scenario.
 */
import { Redis } from 'ioredis';
import { LatencyRecorder, type LatencySummary } from './latency.js';
import type { ClientConfig, GoSignal } from './settings.js';
import type { SystemDefinition } from './systems/system.js';
import { Workload } from './workload.js';

/** What a client process reports (the `RESULT` line). */
export interface ClientReport {
  client: number;
  /** Requests completed successfully inside the window. */
  completed: number;
  /** Requests failed (error or timeout) inside the window. */
  errors: number;
  /** A few distinct error messages with their counts. */
  errorSamples: Array<[string, number]>;
  /** Latency of every successful request of the window. */
  latency: LatencySummary;
  /** Latency of the requests answered from a result cache. */
  hits: LatencySummary;
  /** PING round trips on a spare connection during the window (when asked). */
  ping?: LatencySummary;
  /** Requests this client started over its whole run (warm-up included). */
  sent: number;
  /** Of those, inputs that repeated an earlier one. */
  repeats: number;
}

/** Longest wait for the parent's start signal: a parent that died must not leave clients behind. */
const GO_TIMEOUT_S = 120;
const MAX_ERROR_SAMPLES = 5;
const PING_INTERVAL_MS = 5;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));
const epochNow = () => performance.timeOrigin + performance.now();

export async function runLoadClient(system: SystemDefinition, cfg: ClientConfig): Promise<void> {
  const transport = await system.connectClient(cfg);
  const control = new Redis(cfg.redisUrl, { maxRetriesPerRequest: 1, connectionName: 'bench:control' });
  const probe = cfg.probePing ? new Redis(cfg.redisUrl, { maxRetriesPerRequest: 1, connectionName: 'bench:ping-probe' }) : undefined;
  await control.ping();
  await probe?.ping();
  process.stdout.write(`READY client-${cfg.clientIndex}\n`);

  const reply = await control.blpop(cfg.controlKey, GO_TIMEOUT_S);
  if (!reply) throw new Error(`no start signal on ${cfg.controlKey} within ${GO_TIMEOUT_S} s`);
  const go = JSON.parse(reply[1]) as GoSignal;
  await sleep(go.startAt - epochNow());

  const workload = new Workload(cfg.workload, cfg.clientIndex);
  const latency = new LatencyRecorder();
  const hits = new LatencyRecorder();
  const ping = new LatencyRecorder();
  const errorSamples = new Map<string, number>();
  let completed = 0;
  let errors = 0;
  let sent = 0;
  let stopped = false;
  const inWindow = (t: number) => t >= go.warmupUntil && t < go.measureUntil;

  const loop = async (): Promise<void> => {
    while (!stopped) {
      const input = workload.input();
      sent++;
      const t0 = performance.now();
      let failure: unknown;
      let cached = false;
      try {
        ({ cached } = await transport.send(input));
      } catch (err) {
        failure = err;
      }
      const t1 = performance.now();
      if (inWindow(performance.timeOrigin + t1)) {
        if (failure === undefined) {
          completed++;
          latency.record(t1 - t0);
          if (cached) hits.record(t1 - t0);
        } else {
          errors++;
          const msg = failure instanceof Error ? `${failure.name}: ${failure.message}` : String(failure);
          const key = msg.slice(0, 200);
          if (errorSamples.has(key) || errorSamples.size < MAX_ERROR_SAMPLES) errorSamples.set(key, (errorSamples.get(key) ?? 0) + 1);
        }
      }
      // A system failing fast must not turn the loop into a busy spin that starves the timers.
      if (failure !== undefined) await sleep(1);
    }
  };

  const probeLoop = async (conn: Redis): Promise<void> => {
    while (!stopped) {
      const t0 = performance.now();
      await conn.ping();
      const t1 = performance.now();
      if (inWindow(performance.timeOrigin + t1)) ping.record(t1 - t0);
      await sleep(PING_INTERVAL_MS);
    }
  };

  for (let i = 0; i < cfg.inFlight; i++) void loop();
  if (probe) void probeLoop(probe).catch(() => undefined);

  await sleep(go.measureUntil - epochNow());
  stopped = true;
  const report: ClientReport = {
    client: cfg.clientIndex,
    completed,
    errors,
    errorSamples: [...errorSamples.entries()],
    latency: latency.summary(),
    hits: hits.summary(),
    sent,
    repeats: workload.repeats,
  };
  if (probe) report.ping = ping.summary();
  process.stdout.write(`RESULT ${JSON.stringify(report)}\n`, () => process.exit(0));
}


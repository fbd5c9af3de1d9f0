/**
 * The load generator inside each client process, closed or open loop.
 *
 * Closed loop (the throughput scenarios and `lowload-seq`): `inFlight` loops
 * each send one request, wait for its result, and send the next at once (the
 * offered load adapts to the system, so a slow system is measured at its
 * capacity instead of drowning in a backlog).
 *
 * Open loop (`lowload-50rps`, `overload-*`): requests at a fixed rate, evenly
 * spaced, whatever the answers; a timer wakes at the next request's scheduled
 * time (at least every 1 ms) and sends every request due by then. Latency is
 * counted from the request's SCHEDULED time, so a client that fell behind
 * (event loop busy) shows up in the numbers instead of hiding (coordinated
 * omission). Refusals by a bounded queue (INFERQ_QUEUE_FULL) are counted and
 * timed apart from other errors; a refused request is not sent again (each
 * open-loop request is a new one, so a flood never turns into a retry spin). At most MAX_OPEN_OUTSTANDING requests are
 * unanswered at once; past it a due request is not sent and counted as
 * `skipped` (a bound on the generator, not part of any system).
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
  /** The scenario part this client played (ClientConfig.part), if any. */
  part?: string;
  /** Requests completed successfully inside the window. */
  completed: number;
  /** Requests failed (error or timeout) inside the window, refusals (INFERQ_QUEUE_FULL) not included. */
  errors: number;
  /** Requests refused inside the window with INFERQ_QUEUE_FULL. */
  rejected: number;
  /** Time to each refusal. */
  rejections: LatencySummary;
  /** Open loop: requests due in the window but not sent (MAX_OPEN_OUTSTANDING unanswered). */
  skipped: number;
  /** A few distinct error messages with their counts. */
  errorSamples: Array<[string, number]>;
  /** Latency of every successful request of the window. */
  latency: LatencySummary;
  /** Latency of the requests answered from a result cache. */
  hits: LatencySummary;
  /** PING round trips on a spare connection during the window (when asked). */
  ping?: LatencySummary;
  /**
   * With the in-process cache on: after the window, sequential requests for an input this client
   * already has an answer for, one at a time, in a process with nothing else to do: the cost of
   * that tier itself (under load a hit also waits behind the process's other lanes).
   */
  localHitIdle?: LatencySummary;
  /** Requests this client started over its whole run (warm-up included). */
  sent: number;
  /** Of those, inputs that repeated an earlier one. */
  repeats: number;
}

/** Longest wait for the parent's start signal: a parent that died must not leave clients behind. */
const GO_TIMEOUT_S = 120;
const MAX_ERROR_SAMPLES = 5;
const PING_INTERVAL_MS = 5;
/** Open loop: most requests unanswered at once per client process. */
const MAX_OPEN_OUTSTANDING = 20_000;
const QUEUE_FULL = 'INFERQ_QUEUE_FULL';
/** Sequential requests of the in-process hit probe (after the window). */
const LOCAL_HIT_PROBES = 2000;

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
  const rejections = new LatencyRecorder();
  const errorSamples = new Map<string, number>();
  let completed = 0;
  let errors = 0;
  let rejected = 0;
  let skipped = 0;
  let sent = 0;
  let stopped = false;
  /** The last input answered: cached in process when the in-process cache is on. */
  let lastAnswered: unknown;
  const inWindow = (t: number) => t >= go.warmupUntil && t < go.measureUntil;

  /** One request; `t0` is when it counts from (performance.now() time base). Resolves true when it failed. */
  const one = async (t0: number): Promise<boolean> => {
    const input = workload.input();
    sent++;
    let failure: unknown;
    let cached = false;
    try {
      ({ cached } = await transport.send(input));
    } catch (err) {
      failure = err;
    }
    const t1 = performance.now();
    if (failure === undefined) lastAnswered = input;
    if (inWindow(performance.timeOrigin + t1)) {
      if (failure === undefined) {
        completed++;
        latency.record(t1 - t0);
        if (cached) hits.record(t1 - t0);
      } else if ((failure as { code?: unknown }).code === QUEUE_FULL) {
        rejected++;
        rejections.record(t1 - t0);
      } else {
        errors++;
        const msg = failure instanceof Error ? `${failure.name}: ${failure.message}` : String(failure);
        const key = msg.slice(0, 200);
        if (errorSamples.has(key) || errorSamples.size < MAX_ERROR_SAMPLES) errorSamples.set(key, (errorSamples.get(key) ?? 0) + 1);
      }
    }
    return failure !== undefined;
  };

  const loop = async (): Promise<void> => {
    while (!stopped) {
      const failed = await one(performance.now());
      // A system failing fast must not turn the loop into a busy spin that starves the timers.
      if (failed) await sleep(1);
    }
  };

  const openLoop = (ratePerSec: number, phase: number): void => {
    const intervalMs = 1000 / ratePerSec;
    const startPerf = go.startAt - performance.timeOrigin + phase * intervalMs;
    let next = 0;
    let outstanding = 0;
    const tick = (): void => {
      if (stopped) return;
      const now = performance.now();
      while (startPerf + next * intervalMs <= now) {
        const scheduled = startPerf + next * intervalMs;
        next++;
        if (outstanding >= MAX_OPEN_OUTSTANDING) {
          if (inWindow(performance.timeOrigin + scheduled)) skipped++;
          continue;
        }
        outstanding++;
        void one(scheduled).finally(() => outstanding--);
      }
      const wait = startPerf + next * intervalMs - performance.now();
      setTimeout(tick, Math.max(0, Math.min(wait, 1)));
    };
    tick();
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

  if (cfg.load.kind === 'closed') {
    for (let i = 0; i < cfg.load.inFlight; i++) void loop();
  } else {
    openLoop(cfg.load.ratePerSec, cfg.load.phase);
  }
  if (probe) void probeLoop(probe).catch(() => undefined);

  await sleep(go.measureUntil - epochNow());
  stopped = true;
  let localHitIdle: LatencySummary | undefined;
  if (cfg.localCache && lastAnswered !== undefined) {
    // Let the lanes' last requests settle, then time the tier alone.
    await sleep(200);
    const probeHits = new LatencyRecorder();
    for (let i = 0; i < LOCAL_HIT_PROBES; i++) {
      const t0 = performance.now();
      const { cached } = await transport.send(lastAnswered as never);
      if (cached) probeHits.record(performance.now() - t0);
    }
    localHitIdle = probeHits.summary();
  }
  const report: ClientReport = {
    client: cfg.clientIndex,
    ...(cfg.part !== undefined ? { part: cfg.part } : {}),
    completed,
    errors,
    rejected,
    rejections: rejections.summary(),
    skipped,
    errorSamples: [...errorSamples.entries()],
    latency: latency.summary(),
    hits: hits.summary(),
    sent,
    repeats: workload.repeats,
  };
  if (probe) report.ping = ping.summary();
  if (localHitIdle) report.localHitIdle = localHitIdle;
  process.stdout.write(`RESULT ${JSON.stringify(report)}\n`, () => process.exit(0));
}


/**
 * The embedded mode: the same workload through `InferenceOptimizer` (the
 * original single-process facade: in-memory LRU cache, single-flight,
 * request batcher) and the same default ONNX model, in this one process.
 * No Redis, so no worker or client processes: the clients are simulated
 * as concurrent load generators sharing the optimizer, as threads of one
 * application would.
 *
 * It exists so that `pnpm demo` shows inferq doing real work on any
 * machine; the summary says clearly that this is not the distributed mode.
 */
import { InferenceOptimizer, createLogger } from '@inferq/core';
import { loadModelModule } from '@inferq/worker';
import { runLoad, type CallResult } from './load-generator.js';
import { aborted, type ModeRunner, type RunHooks, type RunResult } from './mode-run.js';
import type { BatchItems } from './metrics.js';
import type { DemoOptions } from './options.js';
import type { RequestRecord } from './protocol.js';
import { buildInputPool, clientSchedule, splitRequests } from './workload.js';

export interface EmbeddedSetup {
  options: DemoOptions;
  model: string;
  inputSize: number;
}

/** How often records are handed to the progress bar (same cadence as client processes). */
const REPORT_INTERVAL_MS = 200;

export class EmbeddedMode implements ModeRunner {
  private optimizer: InferenceOptimizer<number[], number[]> | undefined;
  private closeModel: (() => Promise<void> | void) | undefined;
  private waiting = 'starting';

  constructor(private readonly s: EmbeddedSetup) {}

  describeWaiting(): string {
    return this.waiting;
  }

  async run(hooks: RunHooks): Promise<RunResult> {
    const { options: o, inputSize } = this.s;
    const t0 = performance.now();
    hooks.status('building the default ONNX model in this process ...');
    this.waiting = 'the ONNX model to load';
    const module = await loadModelModule('builtin:onnx-default');
    this.closeModel = module.close?.bind(module);
    await Promise.race([module.init?.(), aborted(hooks.signal)]);

    // Count every model call around the model function: the optimizer reports only the average batch size.
    const bySize = new Map<number, number>();
    let modelCalls = 0;
    let modelItems = 0;
    const model = async (inputs: number[][]) => {
      modelCalls++;
      modelItems += inputs.length;
      bySize.set(inputs.length, (bySize.get(inputs.length) ?? 0) + 1);
      return (await module.run(inputs)) as Array<number[] | Error>;
    };
    // Errors only: a timed-out request is already in the summary, a warn line per request would bury the progress bar.
    const logger = createLogger('demo-embedded');
    logger.level = 'error';
    const optimizer = new InferenceOptimizer<number[], number[]>({
      model,
      modelName: this.s.model,
      config: { maxBatchSize: o.batchSize, batchTimeoutMs: o.batchTimeoutMs, enableCaching: o.useCache, cacheMaxSize: o.cacheSize },
      logger,
    });
    this.optimizer = optimizer;

    const spec = { seed: o.seed, poolSize: o.poolSize, zipfS: o.zipfS, inputSize };
    const pool = buildInputPool(spec);
    const shares = splitRequests(o.requests, o.clients);
    const schedules = shares.map((n, k) => clientSchedule(spec, k, n));
    const startupSeconds = (performance.now() - t0) / 1000;
    hooks.status(`model ready after ${startupSeconds.toFixed(1)} s; sending ${o.requests.toLocaleString('en-US')} requests from ${o.clients} simulated clients`);

    // Which pool inputs have a computation in flight: a miss for one of them joins it (single-flight), which
    // the optimizer does not report per request. A hit is known at once: infer() counts it before it returns.
    const inFlight = new Map<number, number>();
    const call = async (i: number): Promise<CallResult> => {
      const hitsBefore = optimizer.stats.cacheHits;
      const p = optimizer.infer(pool[i] as number[], { timeoutMs: o.requestTimeoutMs });
      if (optimizer.stats.cacheHits > hitsBefore) return { cached: (await p).cached, coalesced: false };
      const joined = o.useCache && (inFlight.get(i) ?? 0) > 0;
      inFlight.set(i, (inFlight.get(i) ?? 0) + 1);
      try {
        const r = await p;
        return { cached: r.cached, coalesced: joined };
      } finally {
        const n = (inFlight.get(i) ?? 1) - 1;
        if (n > 0) inFlight.set(i, n);
        else inFlight.delete(i);
      }
    };

    const records: RequestRecord[] = [];
    let pending: RequestRecord[] = [];
    const flush = () => {
      if (pending.length) hooks.records(pending);
      pending = [];
    };
    const timer = setInterval(flush, REPORT_INTERVAL_MS);
    this.waiting = 'requests to finish';
    hooks.started();
    try {
      await Promise.race([
        Promise.all(
          schedules.map((schedule, client) =>
            runLoad(call, {
              client,
              schedule,
              inFlight: o.inFlight,
              openRatePerSec: o.openRate / o.clients,
              seed: o.seed,
              onRecord: (r) => {
                records.push(r);
                pending.push(r);
              },
            }),
          ),
        ),
        aborted(hooks.signal),
      ]);
    } finally {
      clearInterval(timer);
      flush();
    }

    const st = optimizer.stats;
    const batchItems: BatchItems[] = [...bySize.entries()].map(([batchSize, calls]) => ({ worker: 'in-process batcher', batchSize, items: calls * batchSize }));
    await this.shutdown();
    return {
      records,
      startupSeconds,
      embedded: {
        modelCalls,
        modelItems,
        cacheHitRate: st.cacheHitRate,
        // Every miss either starts a computation (one batcher item) or joins one in flight.
        coalesced: o.useCache ? Math.max(0, st.cacheMisses - modelItems) : 0,
        timeouts: records.filter((r) => r.outcome === 'timeout').length,
      },
      batchItems,
      clientPids: new Map(),
      workerPids: new Map(),
      childErrorLogs: [],
    };
  }

  async shutdown(): Promise<void> {
    const optimizer = this.optimizer;
    this.optimizer = undefined;
    await optimizer?.close().catch(() => undefined);
    const close = this.closeModel;
    this.closeModel = undefined;
    await Promise.resolve(close?.()).catch(() => undefined);
  }
}

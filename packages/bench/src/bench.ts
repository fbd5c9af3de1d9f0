/**
 * `pnpm bench`: inferq against the baselines that say what its numbers
 * mean, measured side by side in ONE run, on ONE Redis, under the SAME load:
 *
 *   plain BullMQ      - what a user glues together (one job per request);
 *   BullMQ + batching - what a capable team builds on BullMQ alone (addBulk per
 *                       tick, one QueueEvents listener, an in-process batcher);
 *   inferq            - InferenceClient + the real `inferq-worker` CLI;
 *   floor             - a minimal Redis list queue (LPUSH / BRPOP + RPOP count).
 *
 * each with (a) a no-op model and (b) the default ONNX model, plus (c) inferq
 * with a 50 % repeat workload and its result cache on; then inferq alone at
 * (d) low load (latency with the library's defaults) and (e) overload (5x what
 * the workers serve, maxQueueLength set), and (f) how it scales: 1, 2 and 4
 * worker processes on the one Redis, and 2 on a Redis Cluster with
 * queueShards 1 and 3 (a local cluster the bench starts, or --redis-cluster).
 * A short cold-start section first times fresh processes run from dist/
 * (cold-start.ts).
 *
 * Fairness, and why:
 * - Same processes: C client processes (closed loop, N/C requests in flight
 *   each) and W worker processes for every system, started fresh for every
 *   scenario and ended by pid after it; Redis emptied between scenarios.
 * - One concurrency setting for every worker process: it holds
 *   `maxBatchSize x numWorkers` requests in work at once (default 32 x 1):
 *   BullMQ's `concurrency`, inferq's `--max-batch-size`/`--num-workers`, and
 *   the list queue's batch size and loops per process. ONNX runs on the JS
 *   thread (onnxruntime-node), so more model calls in flight per process would
 *   not add compute anyway; processes are what scale it.
 * - Same model code: the baselines load the same built-ins the CLI loads.
 * - Same inputs: seeded per run (`--seed`), same sizes and JSON for all.
 * - Warm-up excluded; a fixed measured window; repetitions interleaved
 *   (rep 1 of every scenario, then rep 2, ...) so that drift of the machine
 *   hits every system alike, and the median repetition is reported.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { HELP, parseBenchArgs, type BenchOptions } from './args.js';
import { mean, percentile, type LatencySummary } from './latency.js';
import { machineInfo, type MachineInfo } from './machine.js';
import { defaultModelDescription, defaultModelInputSize, measureDefaultModelCost, type CostCurve } from './model-cost-curve.js';
import { openClusterTarget, type ClusterTarget } from './cluster-target.js';
import { openRedisTarget, type RedisTarget } from './redis-target.js';
import { formatColdStart, measureColdStart, type ColdStartReport } from './cold-start.js';
import { batchMs, buildRows, checkGoals, formatGoals, formatLatencyTable, formatNotes, formatPartsTable, formatScaleNotes, formatScaleTable, formatTable, isPartsRow, isScaleRow, isThroughputRow, ms, shardCeiling } from './report.js';
import { CACHE_MAX_SIZE, REPEAT_WINDOW, runScenario, type ScenarioRun } from './run-scenario.js';
import { BAD_MODEL_RATE, NOISY, OVERLOAD, PRIORITY, SCALE_CLUSTER_WORKERS, SCENARIOS, needsCluster, selectScenarios, type ScenarioDef } from './scenarios.js';
import { BAD_MODEL, SLEEP_MODEL_COST_MS } from './settings.js';
import { SYSTEM_LABELS } from './systems/registry.js';

/** Starts of each kind in the cold-start section; the median is reported. */
const COLD_STARTS = 5;

async function main(): Promise<void> {
  let opts: BenchOptions | undefined;
  try {
    opts = parseBenchArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`bench: ${(err as Error).message}\n\n${HELP}`);
    process.exitCode = 2;
    return;
  }
  if (!opts) return;
  let scenarios: ScenarioDef[];
  try {
    scenarios = opts.coldStartOnly ? [] : selectScenarios(opts.only, opts.quick);
  } catch (err) {
    console.error(`bench: ${(err as Error).message}`);
    process.exitCode = 2;
    return;
  }
  const t0 = Date.now();
  const runId = randomBytes(3).toString('hex');

  const target = await openRedisTarget(opts.redisUrl);
  let cluster: ClusterTarget | undefined;
  // Ctrl-C or a kill: stop the bench's redis-server and cluster; testkit SIGKILLs the other children on exit.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      console.error(`\nbench: ${signal}, stopping`);
      void Promise.allSettled([target.close(), cluster?.close()]).finally(() => process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1)));
    });
  }
  try {
    // The cluster scenarios' Redis Cluster: started once for the run, only when one of them is selected.
    const skipped: Array<{ id: string; reason: string }> = [];
    if (scenarios.some(needsCluster)) {
      const opening = await openClusterTarget(opts.redisCluster);
      if (opening.ok) {
        cluster = opening.target;
      } else {
        for (const s of scenarios.filter(needsCluster)) skipped.push({ id: s.id, reason: opening.reason });
        scenarios = scenarios.filter((s) => !needsCluster(s));
        console.log(`bench: skipping ${skipped.map((s) => s.id).join(', ')}: no Redis Cluster (${opening.reason}; --redis-cluster host:port,... uses an existing one)\n`);
      }
    }
    await run(opts, scenarios, target, cluster, skipped, runId, t0);
  } finally {
    await Promise.allSettled([target.close(), cluster?.close()]);
  }
}

async function run(
  opts: BenchOptions,
  scenarios: ScenarioDef[],
  target: RedisTarget,
  cluster: ClusterTarget | undefined,
  skipped: ReadonlyArray<{ id: string; reason: string }>,
  runId: string,
  t0: number,
): Promise<void> {
  const machine = await machineInfo(target);
  printHeader(opts, machine, scenarios, cluster ? { description: cluster.description, version: await cluster.version() } : undefined, skipped);

  const pingSamples = opts.quick ? 1000 : 5000;
  const pingIdle = await target.pingRtt(pingSamples);
  console.log(`Redis PING round trip (idle, ${pingSamples} sequential, from this process): avg ${ms(mean(pingIdle))} ms, p50 ${ms(percentile(pingIdle, 50))} ms, p99 ${ms(percentile(pingIdle, 99))} ms\n`);

  let coldStart: ColdStartReport | undefined;
  if (opts.coldStart) {
    const namespace = `bench-${runId}-cold-start`;
    coldStart = await measureColdStart(target.url, namespace, COLD_STARTS);
    await target.reset(namespace);
    console.log(`${formatColdStart(coldStart)}\n`);
  }
  if (opts.coldStartOnly) {
    if (opts.json) {
      writeFileSync(resolve(opts.json), JSON.stringify({ runId, machine, coldStart: coldStart ?? null }, null, 2) + '\n');
      console.log(`JSON written to ${resolve(opts.json)}`);
    }
    return;
  }

  let cost: CostCurve | undefined;
  if (opts.costCurve) {
    cost = await measureDefaultModelCost(opts.quick, opts.seed);
    console.log(`Default ONNX model cost curve (this process, alone; loaded in ${(cost.loadMs / 1000).toFixed(1)} s):\n${cost.text}\n`);
  }

  const labels = SYSTEM_LABELS;
  const ctx = { opts, target, runId, onnxInputSize: defaultModelInputSize(), cluster };
  const runs: ScenarioRun[] = [];
  for (let rep = 1; rep <= opts.reps; rep++) {
    for (const def of scenarios) {
      const r = await runScenario(def, rep, ctx);
      runs.push(r);
      const tag = `[${rep}/${opts.reps}] ${def.id.padEnd(26)} ${(labels[def.system] ?? '').padEnd(18)}`;
      if (r.ok) {
        const errs = (r.errors ? `, ${r.errors} errors` : '') + (r.rejected ? `, ${r.rejected} refused (p99 ${ms(r.rejectP99Ms)} ms)` : '');
        // Scenarios with parts: each part's own figures too (the totals mix a flood with a trickle).
        const parts = r.parts
          ? `  [${Object.values(r.parts).map((p) => `${p.name}: ${Math.round(p.reqPerSec)} req/s, p50 ${ms(p.p50Ms)} p99 ${ms(p.p99Ms)} ms${p.rejected ? `, ${p.rejected} refused` : ''}`).join('; ')}; batch ${ms(batchMs(r))} ms]`
          : '';
        console.log(`${tag} ${Math.round(r.reqPerSec).toLocaleString('en-US').padStart(7)} req/s  p50 ${ms(r.p50Ms)} ms  p99 ${ms(r.p99Ms)} ms  batch ${Number.isFinite(r.avgBatch) ? r.avgBatch.toFixed(1) : '-'}${errs}${parts}  (ready in ${(r.startupMs / 1000).toFixed(1)} s, ended in ${(r.teardownMs / 1000).toFixed(1)} s)`);
      } else {
        console.log(`${tag} FAILED: ${(r.failure ?? '').split('\n')[0]}`);
      }
    }
  }

  const rows = buildRows(scenarios, runs, labels);
  const goals = checkGoals(rows, pingIdle);
  const mode = opts.quick ? 'quick' : 'full';
  console.log(`\nResults (${mode}: ${opts.durationMs / 1000} s measured per scenario after ${opts.warmupMs / 1000} s warm-up, ${opts.reps === 1 ? '1 repetition' : `median of ${opts.reps} repetitions by req/s`}):\n`);
  const throughput = rows.filter(isThroughputRow);
  const scale = rows.filter(isScaleRow);
  const parts = rows.filter(isPartsRow);
  const latency = rows.filter((r) => !isThroughputRow(r) && !isScaleRow(r) && !isPartsRow(r));
  if (throughput.length) console.log(formatTable(throughput));
  const clean = rows.find((r) => r.def.id === 'bad-model-clean');
  const bad = rows.find((r) => r.def.id === 'bad-model');
  if (latency.length) console.log(`${throughput.length ? '\n' : ''}Low load (d), overload (e) and bad model (g), inferq alone (answered = goodput; p50/p99/max of answered requests; refusals = INFERQ_QUEUE_FULL):\n\n${formatLatencyTable(latency)}`);
  if (clean?.median && bad?.median) {
    // Answered requests are the clean ones (a hanging or throwing input is answered with its error).
    const c = clean.median;
    // (both checked above)
    const b = bad.median;
    const expectedBad = (BAD_MODEL.hangRate + BAD_MODEL.throwRate) * (b.completed + b.errors);
    console.log(
      `\nBad model (g) against its clean run: goodput ${b.reqPerSec.toFixed(0)} vs ${c.reqPerSec.toFixed(0)} req/s (${((100 * b.reqPerSec) / c.reqPerSec).toFixed(1)} %), ` +
        `p99 of clean requests ${ms(b.p99Ms)} vs ${ms(c.p99Ms)} ms (${(b.p99Ms / c.p99Ms).toFixed(2)}x), p50 ${ms(b.p50Ms)} vs ${ms(c.p50Ms)} ms; ` +
        `errors ${b.errors} (about ${expectedBad.toFixed(0)} inputs were bad; more means clean requests failed with them), ${b.counters?.errors ?? '?'} in the workers' stats.`,
    );
  }
  if (scale.length || skipped.length) {
    const why = skipped.length ? `\n  - skipped ${skipped.map((s) => s.id).join(', ')}: ${skipped[0]?.reason}` : '';
    console.log(
      `${throughput.length || latency.length ? '\n' : ''}Scaling (f), inferq alone, no-op model, closed loop (${opts.inFlight} in flight from ${opts.clients} client processes in every row; ` +
        `ratios = req/s / req/s of scale-w1 and of scale-cluster-s1; Redis main thread = INFO cpu used_cpu_*_main_thread over the window, 1.00 = one core):\n\n${scale.length ? formatScaleTable(scale) : '(no scaling scenario ran)'}\n${formatScaleNotes(scale, machine.cpus)}${why}`,
    );
  }
  if (parts.length) {
    console.log(
      `\nTenants (h) and priorities (i), inferq alone, one line per part of a scenario (its own client processes; answered = goodput; ` +
        `refused % = INFERQ_QUEUE_FULL of what the part asked for; batch ms = model time per batch, the workers' stats over the window):\n\n${formatPartsTable(parts)}`,
    );
  }
  const notes = formatNotes(rows);
  if (notes) console.log(`\nNotes:\n${notes}`);
  console.log(`\nGoals:\n${formatGoals(goals)}`);
  const elapsed = (Date.now() - t0) / 1000;
  console.log(`\nTotal time ${elapsed.toFixed(1)} s (${process.uptime().toFixed(1)} s since this process started).`);

  if (opts.json) {
    const path = resolve(opts.json);
    const json = {
      runId,
      mode,
      elapsedSeconds: elapsed,
      options: opts,
      machine,
      model: { description: defaultModelDescription(), inputSize: defaultModelInputSize(), costCurve: cost?.points ?? null },
      redisPingIdle: summaryJson(pingIdle),
      coldStart: coldStart ?? null,
      cluster: cluster ? { description: cluster.description, nodes: cluster.nodes } : null,
      skipped,
      scaling: scale.length ? { ceiling: shardCeiling(scale, machine.cpus) ?? null } : null,
      scenarios: rows.map((r) => ({
        id: r.def.id,
        title: r.def.title,
        system: r.def.system,
        model: r.def.model,
        caching: r.def.caching,
        localCache: r.def.localCache ?? false,
        repeatFraction: r.def.repeatFraction,
        // With parts, each part has its own load and processes (`parts`).
        load: r.def.parts ? null : (r.def.load ?? { kind: 'closed', inFlight: opts.inFlight }),
        clients: r.def.parts ? r.def.parts.reduce((n, p) => n + (p.clients ?? 1), 0) : (r.def.clients ?? opts.clients),
        workers: r.def.workers ?? opts.workers,
        libraryDefaults: r.def.libraryDefaults ?? false,
        batchPolicy: r.def.batchPolicy ?? null,
        maxQueueLength: r.def.maxQueueLength ?? 0,
        redis: r.def.redis ?? 'single',
        queueShards: r.def.queueShards ?? 1,
        parts: r.def.parts ?? null,
        vsScaleW1: nullIfNaN(r.vsScaleW1),
        vsScaleClusterS1: nullIfNaN(r.vsScaleClusterS1),
        vsPlainBullmq: nullIfNaN(r.vsBullmq),
        vsBullmqBatched: nullIfNaN(r.vsBullmqBatched),
        vsFloor: nullIfNaN(r.vsFloor),
        median: r.median ? runJson(r.median) : null,
        repetitions: r.runs.map(runJson),
      })),
      goals,
    };
    writeFileSync(path, JSON.stringify(json, null, 2) + '\n');
    console.log(`JSON written to ${path}`);
  }
}

function printHeader(
  opts: BenchOptions,
  m: MachineInfo,
  scenarios: ScenarioDef[],
  cluster: { description: string; version: string } | undefined,
  skipped: ReadonlyArray<{ id: string; reason: string }>,
): void {
  console.log(`inferq bench (${opts.quick ? 'quick' : 'full'} mode)`);
  console.log(`Machine: ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGb} GB, ${m.os}, Node ${m.node}, Redis ${m.redisVersion}, load avg ${m.loadAverage}`);
  console.log(`Redis: ${m.redis}`);
  if (opts.coldStartOnly) {
    console.log('The cold-start section alone (--cold-start-only).\n');
    return;
  }
  if (cluster) console.log(`Redis Cluster (scale-cluster-*; Redis ${cluster.version}): ${cluster.description}`);
  console.log(
    `Load: ${opts.clients} client processes x ${Math.floor(opts.inFlight / opts.clients)} in flight = ${opts.inFlight} (closed loop), ` +
      `${opts.workers} worker processes per system, each holding ${opts.maxBatchSize} x ${opts.numWorkers} requests ` +
      `(BullMQ concurrency ${opts.maxBatchSize * opts.numWorkers}; BullMQ + batching concurrency ${opts.maxBatchSize * opts.numWorkers} into a batcher of ${opts.maxBatchSize} x ${opts.numWorkers}, ${opts.batchTimeoutMs} ms, eager; inferq --max-batch-size ${opts.maxBatchSize} --num-workers ${opts.numWorkers} --batch-timeout-ms ${opts.batchTimeoutMs}; list queue batch ${opts.maxBatchSize} x ${opts.numWorkers} loop)`,
  );
  console.log(`Throughput scenarios (a)-(c):`);
  console.log(`Inputs: seed ${opts.seed}; no-op: 4 floats; ONNX: ${defaultModelInputSize()} floats (4 decimals). Caching off except (c).`);
  console.log(
    `(c): half the requests repeat one of the client's last ${REPEAT_WINDOW} new inputs; inferq cache max size ${CACHE_MAX_SIZE} ` +
      `(client config { enableCaching: true }, worker --enable-caching true); PING round trips timed in the client processes during the window.`,
  );
  if (scenarios.some((s) => s.group === 'lowload')) {
    console.log(`(d) low load: 1 client and 1 inferq-worker process, no-op model, the library's defaults (batch 32, timeout 100 ms, 4 batches in flight, policy eager, caching on: every input new); -timeout rows add --batch-policy timeout.`);
  }
  if (scenarios.some((s) => s.group === 'overload')) {
    console.log(
      `(e) overload: model of ${SLEEP_MODEL_COST_MS} ms per call (sleep), ${OVERLOAD.workers} worker processes x --num-workers ${OVERLOAD.numWorkers} x --max-batch-size ${OVERLOAD.maxBatchSize} ` +
        `= ${OVERLOAD.capacityPerSec} req/s served; open loop from ${OVERLOAD.clients} clients at 1x and 5x that; client config maxQueueLength ${OVERLOAD.maxQueueLength}.`,
    );
  }
  if (scenarios.some((s) => s.group === 'bad-model')) {
    console.log(
      `(g) bad model: ${BAD_MODEL_RATE} req/s open loop from 2 clients, 2 inferq-worker processes x --num-workers 4 x --max-batch-size 32, --model-timeout-ms 500, a model of 2 ms per call; ` +
        `bad-model: ${BAD_MODEL.hangRate * 100}% of inputs hang their call ${BAD_MODEL.hangMs} ms, ${BAD_MODEL.throwRate * 100}% make it throw; bad-model-clean: none.`,
    );
  }
  if (scenarios.some((s) => s.group === 'noisy-neighbour')) {
    console.log(
      `(h) noisy neighbour: sleep model of ${SLEEP_MODEL_COST_MS} ms per call, ${NOISY.workers} worker processes x --num-workers ${NOISY.numWorkers} x --max-batch-size ${NOISY.maxBatchSize} = ${NOISY.capacityPerSec} req/s, ` +
        `worker --max-queue-length ${NOISY.maxQueueLength} (the operator's bound, shared between tenants); tenant A: 1 process, ${NOISY.floodPerSec} req/s open loop (5x), refusals counted, not sent again; ` +
        `tenant B: 1 process, ${NOISY.politePerSec} req/s open loop (5 %); noisy-neighbour-alone: B alone, the same rate; noisy-neighbour-flood-alone: A alone.`,
    );
  }
  if (scenarios.some((s) => s.group === 'priority')) {
    console.log(
      `(i) priority: the same fleet (${PRIORITY.capacityPerSec} req/s), no bound; 1 process keeping ${PRIORITY.backlog} low requests in flight (closed loop: a queue ~${(PRIORITY.backlog / PRIORITY.capacityPerSec).toFixed(0)} s deep), ` +
        `1 process sending ${PRIORITY.tricklePerSec} req/s open loop at high (priority) or normal (priority-normal); the default tenant for both.`,
    );
  }
  if (scenarios.some((s) => s.group === 'scale') || skipped.length) {
    console.log(
      `(f) scaling: inferq, no-op model, closed loop, the load above (${opts.clients} clients, ${opts.inFlight} in flight), each worker --max-batch-size ${opts.maxBatchSize} --num-workers ${opts.numWorkers}; ` +
        `scale-w1/w2/w4: 1, 2, 4 inferq-worker processes on the bench's Redis; scale-cluster-s1/s3: ${SCALE_CLUSTER_WORKERS} processes on the Redis Cluster, ` +
        `clients and workers with queueShards 1 / 3 (the start signal stays on the bench's Redis).`,
    );
  }
  const notRun = SCENARIOS.filter((s) => !scenarios.includes(s) && !skipped.some((x) => x.id === s.id));
  const skipNote = opts.quick && !opts.only && notRun.length ? ` (quick mode skips ${notRun.map((s) => s.id).join(', ')}: --only runs them)` : '';
  console.log(`Scenarios: ${scenarios.map((s) => s.id).join(', ')}${skipNote}\n`);
}

function nullIfNaN(n: number): number | null {
  return Number.isFinite(n) ? n : null;
}

function summaryJson(s: LatencySummary) {
  return { count: s.count, meanMs: nullIfNaN(mean(s)), p50Ms: nullIfNaN(percentile(s, 50)), p99Ms: nullIfNaN(percentile(s, 99)), minMs: s.minMs, maxMs: s.maxMs };
}

function runJson(r: ScenarioRun) {
  return {
    rep: r.rep,
    ok: r.ok,
    failure: r.failure ?? null,
    startupMs: r.startupMs,
    readyMs: r.readyMs,
    teardownMs: r.teardownMs,
    windowMs: r.windowMs,
    completed: r.completed,
    errors: r.errors,
    errorSamples: r.errorSamples,
    offeredPerSec: nullIfNaN(r.offeredPerSec),
    rejected: r.rejected,
    rejections: summaryJson(r.rejections),
    rejectP99Ms: nullIfNaN(r.rejectP99Ms),
    skipped: r.skipped,
    reqPerSec: nullIfNaN(r.reqPerSec),
    p50Ms: nullIfNaN(r.p50Ms),
    p99Ms: nullIfNaN(r.p99Ms),
    meanMs: nullIfNaN(r.meanMs),
    avgBatch: nullIfNaN(r.avgBatch),
    counters: r.counters ?? null,
    cacheHits: summaryJson(r.hits),
    pingUnderLoad: r.pingUnderLoad ? summaryJson(r.pingUnderLoad) : null,
    cpu: r.cpu ?? null,
    sent: r.sent,
    repeats: r.repeats,
    stderr: r.stderr ?? null,
    latencyHistogram: r.latency,
    batchMs: nullIfNaN(batchMs(r)),
    parts: r.parts
      ? Object.fromEntries(
          Object.values(r.parts).map((p) => [
            p.name,
            {
              tenant: p.tenant ?? null,
              priority: p.priority ?? null,
              offeredPerSec: nullIfNaN(p.offeredPerSec),
              completed: p.completed,
              errors: p.errors,
              rejected: p.rejected,
              skipped: p.skipped,
              sent: p.sent,
              reqPerSec: nullIfNaN(p.reqPerSec),
              p50Ms: nullIfNaN(p.p50Ms),
              p99Ms: nullIfNaN(p.p99Ms),
              meanMs: nullIfNaN(p.meanMs),
              latency: summaryJson(p.latency),
              rejections: summaryJson(p.rejections),
            },
          ]),
        )
      : null,
  };
}

main().then(
  // The children are ended and Redis closed; leftover timers (e.g. testkit's line-wait timeouts) must not keep the process alive.
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    console.error('bench failed:', err);
    process.exit(1);
  },
);

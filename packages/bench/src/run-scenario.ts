/**
 * Runs one scenario once: start its worker and client processes, give them
 * one common start signal, measure a fixed window after a warm-up, collect
 * the clients' reports, then end every process and empty Redis.
 *
 * Every wait is bounded (startup, window, results) and raced against any
 * process exiting early, so a crashed or hung system fails its scenario with
 * the reason (and the process's stderr) instead of hanging the bench.
 */
import { modelKeys, shardKeys } from '@inferq/core/protocol';
import { keySlot } from '@inferq/testkit';
import type { BenchOptions } from './args.js';
import type { ClusterTarget } from './cluster-target.js';
import { cpuSnapshot, cpuUsage, type CpuUsage, type RedisNodeCpu } from './cpu-usage.js';
import type { ClientReport } from './load-client.js';
import { mean, mergeSummaries, percentile, type LatencySummary } from './latency.js';
import { ProcessSet, withTimeout, type StderrDigest } from './processes.js';
import type { RedisTarget } from './redis-target.js';
import type { ClientPart, ScenarioDef, ScenarioLoad } from './scenarios.js';
import { MODEL_ENV, type BatchCounters, type ClientConfig, type GoSignal, type LoadShape, type ScenarioSettings } from './settings.js';
import { CHILD_SCRIPT, loadSystem } from './systems/registry.js';

export interface ScenarioRun {
  id: string;
  rep: number;
  ok: boolean;
  failure?: string;
  /** Time from the first spawn to every process READY, ms. */
  startupMs: number;
  /** Time from the first spawn to each process's READY, ms. */
  readyMs: Record<string, number>;
  /** Time to end every process and empty Redis, ms. */
  teardownMs: number;
  windowMs: number;
  completed: number;
  /** Failed requests, refusals not included. */
  errors: number;
  errorSamples: Array<[string, number]>;
  /** Refused with INFERQ_QUEUE_FULL (maxQueueLength) in the window. */
  rejected: number;
  /** Time to each refusal. */
  rejections: LatencySummary;
  rejectP99Ms: number;
  /** Open loop: due requests the generator did not send (too many unanswered). */
  skipped: number;
  /** Offered load, req/s (open loop), or NaN (closed loop: it follows the answers). */
  offeredPerSec: number;
  /** Answered req/s (goodput): successful requests completed in the window. */
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  /** Items per model call in the window; 1 for plain BullMQ; NaN when unknown. */
  avgBatch: number;
  /** The system's own counters over the window (inferq: its stats hash; floor: its batch counters). */
  counters?: BatchCounters;
  latency: LatencySummary;
  /** Requests answered from the result cache. */
  hits: LatencySummary;
  /** PING round trips timed inside the client processes during the window. */
  pingUnderLoad?: LatencySummary;
  /** In-process cache hits timed one at a time after the window, in otherwise idle client processes. */
  localHitIdle?: LatencySummary;
  sent: number;
  repeats: number;
  /** CPU of clients, workers and Redis over the window (processes: Linux only; Redis: every node under test). */
  cpu?: CpuUsage;
  /** queueShards the scenario ran with (1 when not set). */
  queueShards: number;
  /** Scenarios with `parts`: each part's own results (the fields above are of all clients together). */
  parts?: Record<string, PartRun>;
  stderr: { workers: StderrDigest; clients: StderrDigest } | undefined;
}

/** One part of a scenario (ScenarioDef.parts): what its clients saw in the window. */
export interface PartRun {
  name: string;
  tenant: string | undefined;
  priority: string | undefined;
  /** Offered req/s (open loop), or NaN (closed loop). */
  offeredPerSec: number;
  completed: number;
  errors: number;
  rejected: number;
  skipped: number;
  sent: number;
  /** Answered req/s in the window. */
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  latency: LatencySummary;
  rejections: LatencySummary;
}

export interface ScenarioContext {
  opts: BenchOptions;
  target: RedisTarget;
  runId: string;
  /** Numbers per input vector for the ONNX model (its input size). */
  onnxInputSize: number;
  /** The run's Redis Cluster, when a selected scenario needs one. */
  cluster?: ClusterTarget | undefined;
}

/** Inputs of the no-op model: small, so the no-op rows measure the queue rather than JSON bytes. */
const NOOP_INPUT_SIZE = 4;
/** Repeats of scenario (c) are drawn from this many recent inputs per client; the cache holds all of them. */
export const REPEAT_WINDOW = 1000;
export const CACHE_MAX_SIZE = 10_000;
/**
 * Children log warnings and errors only: their info lines are not results.
 * The worker CLI reads REDIS_CLUSTER_NODES and INFERQ_QUEUE_SHARDS from the
 * environment: emptied here (an empty value counts as unset), so that only
 * the scenario's own flags decide where its queue lives.
 */
const CHILD_ENV: NodeJS.ProcessEnv = { INFERQ_LOG_LEVEL: 'warn', REDIS_CLUSTER_NODES: '', INFERQ_QUEUE_SHARDS: '', ...MODEL_ENV };

/** A client process of a scenario: its share of a load, and the part it plays (scenarios with parts). */
interface ClientSpec {
  load: LoadShape;
  part?: ClientPart;
}

/** Client `i` of `n`'s share of a load: an open loop's rate split (phases spread evenly), a closed loop's requests in flight split. */
function shareOf(load: ScenarioLoad, i: number, n: number): LoadShape {
  if (load.kind === 'open') return { kind: 'open', ratePerSec: load.ratePerSec / n, phase: i / n };
  const base = Math.floor(load.inFlight / n);
  return { kind: 'closed', inFlight: Math.max(1, base + (i < load.inFlight % n ? 1 : 0)) };
}

const sleepUntil = (t: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, t - Date.now())));

export async function runScenario(def: ScenarioDef, rep: number, ctx: ScenarioContext): Promise<ScenarioRun> {
  const { opts, target } = ctx;
  const namespace = `bench-${ctx.runId}-${def.id}-r${rep}`;
  const cluster = def.redis === 'cluster' ? ctx.cluster : undefined;
  const settings: ScenarioSettings = {
    system: def.system,
    model: def.model,
    redisUrl: target.url,
    clusterNodes: cluster ? [...cluster.nodes] : undefined,
    queueShards: def.queueShards,
    namespace,
    queueName: `bench-${def.model}`,
    maxBatchSize: def.worker?.maxBatchSize ?? opts.maxBatchSize,
    numWorkers: def.worker?.numWorkers ?? opts.numWorkers,
    batchTimeoutMs: opts.batchTimeoutMs,
    caching: def.caching,
    localCache: def.localCache ?? false,
    cacheMaxSize: CACHE_MAX_SIZE,
    libraryDefaults: def.libraryDefaults ?? false,
    batchPolicy: def.batchPolicy,
    jobConcurrency: def.worker?.jobConcurrency,
    workerArgs: def.workerArgs ?? [],
    maxQueueLength: def.maxQueueLength ?? 0,
    requestTimeoutMs: Math.max(10_000, opts.durationMs + opts.warmupMs),
  };
  const numWorkerProcs = def.workers ?? opts.workers;
  const load = def.load ?? { kind: 'closed', inFlight: opts.inFlight };
  // One entry per client process: the scenario's clients sharing its load, or each part's own.
  const clientSpecs: ClientSpec[] = def.parts
    ? def.parts.flatMap((p) => Array.from({ length: p.clients ?? 1 }, (_, i) => ({ load: shareOf(p.load, i, p.clients ?? 1), part: p })))
    : Array.from({ length: def.clients ?? opts.clients }, (_, i) => ({ load: shareOf(load, i, def.clients ?? opts.clients) }));
  const numClients = clientSpecs.length;
  const run: ScenarioRun = {
    id: def.id,
    rep,
    ok: false,
    startupMs: NaN,
    readyMs: {},
    teardownMs: NaN,
    windowMs: opts.durationMs,
    completed: 0,
    errors: 0,
    errorSamples: [],
    rejected: 0,
    rejections: mergeSummaries([]),
    rejectP99Ms: NaN,
    skipped: 0,
    offeredPerSec: load.kind === 'open' ? load.ratePerSec : NaN,
    reqPerSec: NaN,
    p50Ms: NaN,
    p99Ms: NaN,
    meanMs: NaN,
    avgBatch: NaN,
    latency: mergeSummaries([]),
    hits: mergeSummaries([]),
    sent: 0,
    repeats: 0,
    queueShards: def.queueShards ?? 1,
    stderr: undefined,
  };
  const procs = new ProcessSet();
  try {
    if (def.redis === 'cluster' && !cluster) throw new Error('this scenario needs a Redis Cluster and the run has none');
    const system = await loadSystem(def.system);
    // The Redis under test: its counters, and the CPU of each of its nodes (the start signal stays on the bench's one Redis).
    const counterRedis = cluster?.redis ?? target.redis;
    const redisNodes = cluster
      ? (await cluster.topology()).map((n) => ({ node: n.node, redis: cluster.node(n.node) }))
      : [{ node: new URL(target.url).host, redis: target.redis }];
    const controlKey = `${namespace}:control`;
    const started = Date.now();
    for (let i = 0; i < numWorkerProcs; i++) {
      const { script, args } = system.workerCommand(settings, i);
      procs.spawn(`${def.id} worker ${i}`, 'worker', script, args, CHILD_ENV);
    }
    for (let i = 0; i < numClients; i++) {
      const spec = clientSpecs[i] as ClientSpec;
      const cfg: ClientConfig = {
        ...settings,
        role: 'client',
        clientIndex: i,
        load: spec.load,
        ...(spec.part ? { part: spec.part.name, tenant: spec.part.tenant, priority: spec.part.priority } : {}),
        workload: {
          inputSize: def.model === 'onnx' ? ctx.onnxInputSize : NOOP_INPUT_SIZE,
          seed: opts.seed,
          repeatFraction: def.repeatFraction,
          repeatWindow: REPEAT_WINDOW,
        },
        controlKey,
        probePing: def.probePing,
      };
      procs.spawn(`${def.id} client ${i}${spec.part ? ` (${spec.part.name})` : ''}`, 'client', CHILD_SCRIPT, [JSON.stringify(cfg)], CHILD_ENV, /^RESULT /);
    }
    const crashed = procs.unexpectedExit();

    const ready = procs.all.map((p) =>
      p.proc.waitForLine(/^READY /, opts.startupTimeoutMs + 1000).then(() => {
        run.readyMs[p.label] = Date.now() - started;
      }),
    );
    await Promise.race([withTimeout(Promise.all(ready), opts.startupTimeoutMs, 'every process to print READY'), crashed]);
    run.startupMs = Date.now() - started;

    const startAt = Date.now() + 50;
    const go: GoSignal = { startAt, warmupUntil: startAt + opts.warmupMs, measureUntil: startAt + opts.warmupMs + opts.durationMs };
    await target.redis.rpush(controlKey, ...Array.from({ length: numClients }, () => JSON.stringify(go)));

    const pids = procs.all.map((p) => ({ label: p.label, pid: p.proc.pid }));
    await Promise.race([sleepUntil(go.warmupUntil), crashed]);
    const [before, cpuBefore] = await Promise.race([Promise.all([system.readCounters(counterRedis, settings), cpuSnapshot(pids, redisNodes)]), crashed]);
    await Promise.race([sleepUntil(go.measureUntil), crashed]);
    const [after, cpuAfter] = await Promise.race([Promise.all([system.readCounters(counterRedis, settings), cpuSnapshot(pids, redisNodes)]), crashed]);

    const clients = procs.all.filter((p) => p.role === 'client');
    const lines = await Promise.race([
      withTimeout(Promise.all(clients.map((c) => c.proc.waitForLine(/^RESULT /, opts.resultGraceMs + 1000))), opts.resultGraceMs, 'the clients\' results'),
      crashed,
    ]);
    for (const c of clients) c.done = true;
    const reports = lines.map((l) => JSON.parse(l.slice('RESULT '.length)) as ClientReport);
    summarise(run, def, reports, before, after, opts.durationMs);
    const roles = new Map(procs.all.map((p) => [p.label, p.role] as const));
    const cpu = cpuUsage(cpuBefore, cpuAfter, (label) => roles.get(label), opts.durationMs / 1000, run.completed);
    if (cpu) {
      await describeNodes(cpu.redisNodes, settings, cluster);
      run.cpu = cpu;
    }
    if (run.completed === 0 && run.rejected === 0) {
      const why = run.errorSamples.map(([m, n]) => `${n}x ${m}`).join(' | ');
      throw new Error(`no request completed in the measured window (${run.errors} failed${why ? `: ${why}` : ''})`);
    }
    run.ok = true;
  } catch (err) {
    run.failure = err instanceof Error ? err.message : String(err);
  } finally {
    const ending = Date.now();
    await procs.endAll(opts.stopGraceMs);
    run.stderr = { workers: procs.stderrDigest('worker'), clients: procs.stderrDigest('client') };
    try {
      await target.reset(namespace);
      await cluster?.reset(namespace);
    } catch (err) {
      console.warn(`warning: emptying Redis after ${def.id} failed: ${(err as Error).message}`);
    }
    run.teardownMs = Date.now() - ending;
  }
  return run;
}

/**
 * What each Redis node is and which of the model's keys it holds: on a
 * cluster, the master of each shard's hash slot and of the model-wide stats
 * hash (one slot: every shard's workers and clients write it).
 */
async function describeNodes(nodes: RedisNodeCpu[], s: ScenarioSettings, cluster: ClusterTarget | undefined): Promise<void> {
  if (!cluster) {
    for (const n of nodes) Object.assign(n, { role: 'standalone', holds: s.system === 'inferq' ? ['every key'] : [] });
    return;
  }
  const topology = await cluster.topology();
  const ownerOf = (key: string) => {
    const slot = keySlot(key);
    return topology.find((t) => t.role === 'master' && t.slots.some(([a, b]) => slot >= a && slot <= b))?.node;
  };
  const holds = new Map<string, string[]>();
  const add = (node: string | undefined, what: string) => {
    if (node) holds.set(node, [...(holds.get(node) ?? []), what]);
  };
  const shards = shardKeys(s.queueName, s.namespace, s.queueShards ?? 1);
  shards.forEach((k, i) => add(ownerOf(k.root), shards.length === 1 ? 'the queue (1 shard)' : `shard ${i}`));
  add(ownerOf(modelKeys(s.queueName, s.namespace).stats), 'stats');
  for (const n of nodes) {
    const t = topology.find((x) => x.node === n.node);
    Object.assign(n, { role: t?.role ?? 'master', ...(t?.masterOf ? { masterOf: t.masterOf } : {}), holds: holds.get(n.node) ?? [] });
  }
}

function summarise(
  run: ScenarioRun,
  def: ScenarioDef,
  reports: readonly ClientReport[],
  before: BatchCounters | undefined,
  after: BatchCounters | undefined,
  windowMs: number,
): void {
  run.latency = mergeSummaries(reports.map((r) => r.latency));
  run.hits = mergeSummaries(reports.map((r) => r.hits));
  const pings = reports.flatMap((r) => (r.ping ? [r.ping] : []));
  if (pings.length) run.pingUnderLoad = mergeSummaries(pings);
  const local = reports.flatMap((r) => (r.localHitIdle ? [r.localHitIdle] : []));
  if (local.length) run.localHitIdle = mergeSummaries(local);
  run.completed = reports.reduce((n, r) => n + r.completed, 0);
  run.errors = reports.reduce((n, r) => n + r.errors, 0);
  run.rejected = reports.reduce((n, r) => n + r.rejected, 0);
  run.rejections = mergeSummaries(reports.map((r) => r.rejections));
  run.rejectP99Ms = percentile(run.rejections, 99);
  run.skipped = reports.reduce((n, r) => n + r.skipped, 0);
  const samples = new Map<string, number>();
  for (const r of reports) for (const [m, c] of r.errorSamples) samples.set(m, (samples.get(m) ?? 0) + c);
  run.errorSamples = [...samples.entries()];
  run.sent = reports.reduce((n, r) => n + r.sent, 0);
  run.repeats = reports.reduce((n, r) => n + r.repeats, 0);
  run.reqPerSec = run.completed / (windowMs / 1000);
  run.p50Ms = percentile(run.latency, 50);
  run.p99Ms = percentile(run.latency, 99);
  run.meanMs = mean(run.latency);
  if (def.parts) {
    run.parts = {};
    for (const p of def.parts) {
      const mine = reports.filter((r) => r.part === p.name);
      const latency = mergeSummaries(mine.map((r) => r.latency));
      const completed = mine.reduce((n, r) => n + r.completed, 0);
      run.parts[p.name] = {
        name: p.name,
        tenant: p.tenant,
        priority: p.priority,
        offeredPerSec: p.load.kind === 'open' ? p.load.ratePerSec : NaN,
        completed,
        errors: mine.reduce((n, r) => n + r.errors, 0),
        rejected: mine.reduce((n, r) => n + r.rejected, 0),
        skipped: mine.reduce((n, r) => n + r.skipped, 0),
        sent: mine.reduce((n, r) => n + r.sent, 0),
        reqPerSec: completed / (windowMs / 1000),
        p50Ms: percentile(latency, 50),
        p99Ms: percentile(latency, 99),
        meanMs: mean(latency),
        latency,
        rejections: mergeSummaries(mine.map((r) => r.rejections)),
      };
    }
  }
  if (def.system === 'bullmq') {
    run.avgBatch = 1;
  } else if (before && after) {
    const delta = diffCounters(before, after);
    run.counters = delta;
    run.avgBatch = delta.batches > 0 ? delta.items / delta.batches : NaN;
  }
}

function diffCounters(a: BatchCounters, b: BatchCounters): BatchCounters {
  const out: BatchCounters = { batches: b.batches - a.batches, items: b.items - a.items };
  for (const k of ['cacheHits', 'cacheMisses', 'coalesced', 'workerCacheHits', 'errors', 'timeouts', 'deadlineDrops', 'modelMs'] as const) {
    const x = a[k];
    const y = b[k];
    if (x !== undefined && y !== undefined) out[k] = y - x;
  }
  return out;
}

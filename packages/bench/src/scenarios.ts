/**
 * The scenarios of a run. Rows are grouped by model, so each system's row sits
 * next to the baselines it is divided by.
 *
 * Throughput (closed loop, --in-flight requests, every system):
 *   (a) no-op, (b) ONNX, (c) ONNX with 50 % repeats and inferq's cache (Redis's,
 *   then also each client's in-process cache in front of it).
 * Latency at low load (inferq only, no-op model, the library's defaults):
 *   one request in flight, and 50 req/s open loop; each also with
 *   `--batch-policy timeout` (the policy before 'eager' became the default).
 * Overload (inferq only, a model of fixed cost per batch, maxQueueLength set):
 *   open loop at 1x and 5x what the workers can serve.
 * Bad model (inferq only, open loop): a model where some inputs hang far past
 *   --model-timeout-ms and some make the call throw, against the same model
 *   with none: goodput and p99 of the clean requests.
 * Scaling (inferq only, no-op model, closed loop, the same clients and load):
 *   1, 2 and 4 worker processes on the bench's one Redis; 2 worker processes
 *   on a Redis Cluster (3 masters + 3 replicas) with queueShards 1 and 3.
 * Noisy neighbour (inferq only, sleep model, the operator's bound): a tenant
 *   flooding at 5x capacity next to one at 5 %, and the second alone.
 * Priority (inferq only, sleep model): a high trickle behind a deep low
 *   backlog, and the same trickle at normal.
 */
import { BAD_MODEL, SLEEP_MODEL_COST_MS, type BatchPolicy, type ModelKind, type Priority, type SystemId } from './settings.js';

export type ScenarioGroup = 'noop' | 'onnx' | 'cache' | 'lowload' | 'overload' | 'bad-model' | 'scale' | 'noisy-neighbour' | 'priority';
export const GROUPS: readonly ScenarioGroup[] = ['noop', 'onnx', 'cache', 'lowload', 'overload', 'bad-model', 'scale', 'noisy-neighbour', 'priority'];

/** Offered load of a whole scenario (split over its client processes). */
export type ScenarioLoad = { kind: 'closed'; inFlight: number } | { kind: 'open'; ratePerSec: number };

/**
 * One kind of client in a scenario whose clients differ (a tenant, a
 * priority class): its own processes and load, its results reported apart
 * (ScenarioRun.parts) besides the scenario's totals.
 */
export interface ClientPart {
  /** Key of its results, e.g. 'A', 'B', 'high'. */
  name: string;
  /** inferq client option `tenant` (undefined: the default tenant). */
  tenant?: string;
  /** inferq client option `priority` (undefined: normal). */
  priority?: Priority;
  /** This part's load, split over its processes. */
  load: ScenarioLoad;
  /** Client processes of this part (default 1). */
  clients?: number;
}

export interface ScenarioDef {
  id: string;
  group: ScenarioGroup;
  system: SystemId;
  model: ModelKind;
  caching: boolean;
  /** Share of requests repeating an earlier input. */
  repeatFraction: number;
  /** Time PING round trips from the clients during the window (for the cache-hit goal). */
  probePing: boolean;
  /** Shown in the table's first column. */
  title: string;
  /** Run by `--quick` without `--only` (`--only` runs any scenario it names). */
  inQuick: boolean;
  /** Default: closed loop with --in-flight requests. */
  load?: ScenarioLoad;
  /** Client / worker processes; default --clients / --workers. */
  clients?: number;
  workers?: number;
  /** inferq with the library's defaults (see ScenarioSettings.libraryDefaults). */
  libraryDefaults?: boolean;
  batchPolicy?: BatchPolicy;
  /** Worker settings of this scenario instead of --max-batch-size / --num-workers. */
  worker?: { maxBatchSize: number; numWorkers: number; jobConcurrency?: number };
  /** More `inferq-worker` flags. */
  workerArgs?: string[];
  /** inferq client config maxQueueLength. */
  maxQueueLength?: number;
  /** Where the system under test keeps its queue: the bench's one Redis (default) or the run's Redis Cluster. */
  redis?: 'single' | 'cluster';
  /** inferq queueShards (client and worker); undefined = the library default (1, flag not passed). */
  queueShards?: number;
  /** inferq clients with their in-process result cache on (its defaults). */
  localCache?: boolean;
  /** Clients of different kinds (tenants, priorities) instead of `clients` x `load`: see ClientPart. */
  parts?: readonly ClientPart[];
  /**
   * The part whose latency picks the median repetition (`p99`, or `p50`),
   * instead of the scenario's req/s or p99: the number its goal is about.
   */
  medianBy?: { part: string; metric: 'p50' | 'p99' };
}

const plain = (group: 'noop' | 'onnx', system: SystemId): ScenarioDef => ({
  id: `${group}-${system}`,
  group,
  system,
  model: group,
  caching: false,
  repeatFraction: 0,
  probePing: false,
  title: group === 'noop' ? '(a) no-op' : '(b) ONNX',
  inQuick: true,
});

/** Low load: one client, one worker process, the no-op model, everything else the library's defaults. */
const LOW_RATE = 50;
const lowLoad = (kind: 'seq' | '50rps', policy: BatchPolicy | undefined): ScenarioDef => ({
  id: `lowload-${kind}-inferq${policy ? `-${policy}` : ''}`,
  group: 'lowload',
  system: 'inferq',
  model: 'noop',
  caching: true, // the default; inputs never repeat, so every request is a cache miss
  repeatFraction: 0,
  probePing: false,
  title: `(d) ${kind === 'seq' ? '1 in flight' : `${LOW_RATE} req/s open`}, ${policy ? `--batch-policy ${policy}` : 'defaults (eager)'}`,
  // The -timeout variants show the policy the default replaced; quick mode runs the defaults only.
  inQuick: policy === undefined,
  load: kind === 'seq' ? { kind: 'closed', inFlight: 1 } : { kind: 'open', ratePerSec: LOW_RATE },
  clients: 1,
  workers: 1,
  libraryDefaults: true,
  ...(policy ? { batchPolicy: policy } : {}),
});

/**
 * Overload: 2 worker processes x 1 batch in flight x 8 items per SLEEP_MODEL_COST_MS (40 ms) =
 * 400 req/s the workers can serve, whatever the machine's noise; the queue bounded at two rounds of
 * batches (one in the model, one ready behind it, per batch slot): 2 x 2 x 1 x 8 = 32 requests.
 */
export const OVERLOAD = Object.freeze({
  workers: 2,
  clients: 2,
  maxBatchSize: 8,
  numWorkers: 1,
  /** Jobs a worker holds: its batch in the model and the next one behind it (the default, maxBatchSize x numWorkers, holds only the first). */
  jobConcurrency: 16,
  get capacityPerSec() {
    return (this.workers * this.numWorkers * this.maxBatchSize * 1000) / SLEEP_MODEL_COST_MS;
  },
  get maxQueueLength() {
    return 2 * this.workers * this.numWorkers * this.maxBatchSize;
  },
});
const overload = (factor: 1 | 5): ScenarioDef => ({
  id: `overload-${factor}x`,
  group: 'overload',
  system: 'inferq',
  model: 'sleep',
  caching: false,
  repeatFraction: 0,
  probePing: false,
  title: `(e) ${factor}x capacity, maxQueueLength ${OVERLOAD.maxQueueLength}`,
  inQuick: true,
  load: { kind: 'open', ratePerSec: factor * OVERLOAD.capacityPerSec },
  clients: OVERLOAD.clients,
  workers: OVERLOAD.workers,
  worker: { maxBatchSize: OVERLOAD.maxBatchSize, numWorkers: OVERLOAD.numWorkers, jobConcurrency: OVERLOAD.jobConcurrency },
  maxQueueLength: OVERLOAD.maxQueueLength,
});

/**
 * Bad model: 2 inferq-worker processes (--num-workers 4, --max-batch-size 32,
 * --model-timeout-ms 500), open loop at BAD_MODEL_RATE req/s, a model of 2 ms
 * per call; in the bad run a share of the inputs (BAD_MODEL in settings.ts)
 * hangs its call for 3 s and another makes it throw. The clean run is the same
 * with neither. Goodput and p99 are of answered requests, i.e. the clean ones;
 * not in quick mode (`--only bad-model` runs it).
 */
export const BAD_MODEL_RATE = 500;
const badModel = (bad: boolean): ScenarioDef => ({
  id: bad ? 'bad-model' : 'bad-model-clean',
  group: 'bad-model',
  system: 'inferq',
  model: bad ? 'bad' : 'clean',
  caching: false,
  repeatFraction: 0,
  probePing: false,
  title: bad ? `(g) bad model: ${BAD_MODEL.hangRate * 100}% hang, ${BAD_MODEL.throwRate * 100}% throw` : '(g) the same model, clean',
  inQuick: false,
  load: { kind: 'open', ratePerSec: BAD_MODEL_RATE },
  clients: 2,
  workers: 2,
  worker: { maxBatchSize: 32, numWorkers: 4 },
  workerArgs: ['--model-timeout-ms', '500'],
});

/**
 * Scaling: inferq alone, no-op model (so the queue, not the model, is what
 * scales), closed loop with --in-flight requests from --clients processes in
 * every row; only the worker processes and where the queue lives change.
 * The cluster rows use 2 worker processes (as scale-w2) so that they differ
 * from it only by the Redis: one node vs a cluster, one shard vs three.
 */
export const SCALE_CLUSTER_WORKERS = 2;
const scale = (id: string, title: string, workers: number, cluster?: { shards: number }): ScenarioDef => ({
  id,
  group: 'scale',
  system: 'inferq',
  model: 'noop',
  caching: false,
  repeatFraction: 0,
  probePing: false,
  title,
  // 5 scenarios, one of them starting a 6-node cluster: not cheap enough for the ~2 min quick run.
  inQuick: false,
  workers,
  ...(cluster ? { redis: 'cluster' as const, queueShards: cluster.shards } : {}),
});

/**
 * Noisy neighbour: one fleet of the overload scenarios' shape (sleep model, 2 worker processes x
 * 1 batch of 8 per 40 ms = 400 req/s, whatever the machine's noise), the operator's bound set on
 * the workers (`--max-queue-length`, shared max-min fairly between tenants), and two tenants in
 * separate processes: A floods at 5x capacity open loop (refusals counted, never sent again), B
 * sends 5 % of capacity open loop. `noisy-neighbour-alone` is B with no A, in the same run: B's
 * latency with nobody else, the baseline of the goal; `noisy-neighbour-flood-alone` is A with no
 * B: what the flood itself gets of this fleet on this machine, which tells a shortfall of A's next
 * to B (unfairness) from one the fleet has under any flood (the bound, the machine). The workers keep the library's default job
 * concurrency (maxBatchSize x numWorkers: the batch in the model, none waiting behind it in the
 * worker), so a request of B goes into the next batch rather than behind a batch of A's already
 * formed in the worker.
 */
export const NOISY = Object.freeze({
  workers: 2,
  numWorkers: 1,
  maxBatchSize: 8,
  /**
   * Four rounds of batches of the fleet. With two (32, as in the overload scenarios) the
   * fleet itself answered only ~90 % of its capacity under any flood (A alone: 356 req/s of
   * 400, batches of 7.3 of 8: freed places are refilled a little late), which is the fleet's
   * shortfall, not B's doing.
   */
  maxQueueLength: 64,
  get capacityPerSec() {
    return (this.workers * this.numWorkers * this.maxBatchSize * 1000) / SLEEP_MODEL_COST_MS;
  },
  get floodPerSec() {
    return 5 * this.capacityPerSec;
  },
  get politePerSec() {
    return 0.05 * this.capacityPerSec;
  },
});
const noisyNeighbour = (who: 'both' | 'B' | 'A'): ScenarioDef => ({
  id: who === 'both' ? 'noisy-neighbour' : who === 'B' ? 'noisy-neighbour-alone' : 'noisy-neighbour-flood-alone',
  group: 'noisy-neighbour',
  system: 'inferq',
  model: 'sleep',
  caching: false,
  repeatFraction: 0,
  probePing: false,
  title: who === 'both' ? `(h) tenant A at 5x capacity + tenant B at 5 %` : who === 'B' ? '(h) tenant B alone (its baseline)' : '(h) tenant A alone (what its flood gets of the fleet)',
  inQuick: true,
  load: { kind: 'open', ratePerSec: (who !== 'B' ? NOISY.floodPerSec : 0) + (who !== 'A' ? NOISY.politePerSec : 0) },
  workers: NOISY.workers,
  worker: { maxBatchSize: NOISY.maxBatchSize, numWorkers: NOISY.numWorkers },
  workerArgs: ['--max-queue-length', String(NOISY.maxQueueLength)],
  parts: [
    ...(who !== 'B' ? [{ name: 'A', tenant: 'tenant-a', load: { kind: 'open' as const, ratePerSec: NOISY.floodPerSec } }] : []),
    ...(who !== 'A' ? [{ name: 'B', tenant: 'tenant-b', load: { kind: 'open' as const, ratePerSec: NOISY.politePerSec } }] : []),
  ],
  medianBy: who === 'A' ? { part: 'A', metric: 'p99' } : { part: 'B', metric: 'p99' },
});

/**
 * Priority: the same fleet (400 req/s), a low-priority backlog kept deep by a closed loop of
 * PRIORITY.backlog requests in flight (3 s of work queued at any time: a new low request for
 * every one answered), and a trickle of PRIORITY.tricklePerSec requests open loop from another
 * process, at `high` (`priority`) or `normal` (`priority-normal`, the comparison: the band below
 * high, where lows that waited priorityAgingMs (2 s) are aged to). The queue is not bounded: the
 * backlog is what is queued, not refused. Both clients are the default tenant, so what orders
 * the trickle is its class, not a tenant's fair share.
 */
export const PRIORITY = Object.freeze({
  workers: 2,
  numWorkers: 1,
  maxBatchSize: 8,
  backlog: 1200,
  tricklePerSec: 20,
  get capacityPerSec() {
    return (this.workers * this.numWorkers * this.maxBatchSize * 1000) / SLEEP_MODEL_COST_MS;
  },
});
const priority = (trickle: 'high' | 'normal'): ScenarioDef => ({
  id: trickle === 'high' ? 'priority' : 'priority-normal',
  group: 'priority',
  system: 'inferq',
  model: 'sleep',
  caching: false,
  repeatFraction: 0,
  probePing: false,
  title: `(i) ${PRIORITY.tricklePerSec} req/s ${trickle} behind ${PRIORITY.backlog.toLocaleString('en-US')} low in flight`,
  inQuick: true,
  workers: PRIORITY.workers,
  worker: { maxBatchSize: PRIORITY.maxBatchSize, numWorkers: PRIORITY.numWorkers },
  parts: [
    { name: 'low', priority: 'low', load: { kind: 'closed', inFlight: PRIORITY.backlog } },
    { name: trickle, priority: trickle, load: { kind: 'open', ratePerSec: PRIORITY.tricklePerSec } },
  ],
  medianBy: { part: trickle, metric: 'p50' },
});

export const SCENARIOS: readonly ScenarioDef[] = Object.freeze([
  plain('noop', 'bullmq'),
  plain('noop', 'bullmq-batched'),
  plain('noop', 'inferq'),
  plain('noop', 'floor'),
  plain('onnx', 'bullmq'),
  plain('onnx', 'bullmq-batched'),
  plain('onnx', 'inferq'),
  plain('onnx', 'floor'),
  {
    // The ONNX model: a cache is worth having when a miss is expensive.
    id: 'cache-inferq',
    group: 'cache',
    system: 'inferq',
    model: 'onnx',
    caching: true,
    repeatFraction: 0.5,
    probePing: true,
    title: '(c) ONNX 50% repeats, cache on',
    inQuick: true,
  },
  {
    // The same with each client's in-process cache in front of Redis: a client repeats its own
    // inputs, so its hits are answered in process (the hit latency of that tier).
    id: 'cache-local-inferq',
    group: 'cache',
    system: 'inferq',
    model: 'onnx',
    caching: true,
    localCache: true,
    repeatFraction: 0.5,
    probePing: false,
    title: '(c) the same, in-process cache on',
    inQuick: true,
  },
  lowLoad('seq', undefined),
  lowLoad('seq', 'timeout'),
  lowLoad('50rps', undefined),
  lowLoad('50rps', 'timeout'),
  overload(1),
  overload(5),
  badModel(false),
  badModel(true),
  scale('scale-w1', '(f) 1 worker, one Redis', 1),
  scale('scale-w2', '(f) 2 workers, one Redis', 2),
  scale('scale-w4', '(f) 4 workers, one Redis', 4),
  scale('scale-cluster-s1', `(f) ${SCALE_CLUSTER_WORKERS} workers, cluster, 1 shard`, SCALE_CLUSTER_WORKERS, { shards: 1 }),
  scale('scale-cluster-s3', `(f) ${SCALE_CLUSTER_WORKERS} workers, cluster, 3 shards`, SCALE_CLUSTER_WORKERS, { shards: 3 }),
  noisyNeighbour('B'),
  noisyNeighbour('both'),
  noisyNeighbour('A'),
  priority('high'),
  priority('normal'),
]);

/** Scenarios that run on the run's Redis Cluster. */
export const needsCluster = (s: ScenarioDef): boolean => s.redis === 'cluster';

const SYSTEMS: readonly SystemId[] = ['bullmq', 'bullmq-batched', 'inferq', 'floor'];

/**
 * `--only`: scenario ids, groups or systems, comma separated. Without it, quick mode runs the `inQuick` scenarios.
 * A system name does not select the scaling group (it would start a cluster for `--only inferq`): name the group or ids.
 */
export function selectScenarios(only: readonly string[] | undefined, quick: boolean): ScenarioDef[] {
  if (!only || only.length === 0) return SCENARIOS.filter((s) => !quick || s.inQuick);
  const matches = (s: ScenarioDef, t: string) => s.id === t || s.group === t || (s.system === t && s.group !== 'scale');
  const unknown = only.filter((t) => !SCENARIOS.some((s) => matches(s, t)));
  if (unknown.length) {
    throw new Error(`--only: unknown ${unknown.join(', ')}; use scenario ids (${SCENARIOS.map((s) => s.id).join(', ')}), groups (${GROUPS.join(', ')}) or systems (${SYSTEMS.join(', ')})`);
  }
  return SCENARIOS.filter((s) => only.some((t) => matches(s, t)));
}

/**
 * Turns scenario runs into what a reader needs: one row per scenario (the
 * median repetition by req/s, so each row's numbers come from one coherent
 * run), ratios to the baselines measured in the same run, notes on errors
 * and warnings, and the goals checked against those numbers.
 */
import { mean, percentile, type LatencySummary } from './latency.js';
import type { PartRun, ScenarioRun } from './run-scenario.js';
import { NOISY, type ScenarioDef } from './scenarios.js';
import { SLEEP_MODEL_COST_MS } from './settings.js';

export interface ScenarioRow {
  def: ScenarioDef;
  label: string;
  runs: ScenarioRun[];
  /** The median repetition by req/s among the successful ones; undefined when all failed. */
  median: ScenarioRun | undefined;
  vsBullmq: number;
  vsBullmqBatched: number;
  vsFloor: number;
  /** Scaling rows: req/s divided by scale-w1's and by scale-cluster-s1's (NaN when that row is missing). */
  vsScaleW1: number;
  vsScaleClusterS1: number;
}

/** The throughput scenarios (closed loop, every system): the main table. The others go to the latency table. */
export const isThroughputRow = (r: ScenarioRow) => r.def.group === 'noop' || r.def.group === 'onnx' || r.def.group === 'cache';
/** The scaling scenarios (f): their own table. */
export const isScaleRow = (r: ScenarioRow) => r.def.group === 'scale';
/** The tenant and priority scenarios (h, i): one line per part. */
export const isPartsRow = (r: ScenarioRow) => r.def.parts !== undefined;

export type GoalStatus = 'PASS' | 'FAIL' | 'INFO' | 'N/A';

export interface Goal {
  name: string;
  status: GoalStatus;
  detail: string;
}

export function buildRows(defs: readonly ScenarioDef[], runs: readonly ScenarioRun[], labels: Readonly<Record<string, string>>): ScenarioRow[] {
  const rows = defs.map((def): ScenarioRow => {
    const mine = runs.filter((r) => r.id === def.id);
    // Closed loop: the median by req/s. Open loop (req/s is set by the load): the median by p99.
    // With parts: by the latency of the part the scenario's goal is about.
    const by = def.medianBy;
    const finite = (n: number | undefined) => (n !== undefined && Number.isFinite(n) ? n : Infinity);
    const key = (r: ScenarioRun) =>
      by ? finite(by.metric === 'p50' ? r.parts?.[by.part]?.p50Ms : r.parts?.[by.part]?.p99Ms) : def.load?.kind === 'open' ? finite(r.p99Ms) : r.reqPerSec;
    const ok = mine.filter((r) => r.ok).sort((a, b) => key(a) - key(b));
    return {
      def,
      label: labels[def.system] ?? def.system,
      runs: mine,
      median: ok[(ok.length - 1) >> 1],
      vsBullmq: NaN,
      vsBullmqBatched: NaN,
      vsFloor: NaN,
      vsScaleW1: NaN,
      vsScaleClusterS1: NaN,
    };
  });
  const scaleBase = (id: string) => rows.find((r) => r.def.id === id)?.median?.reqPerSec ?? NaN;
  for (const row of rows.filter(isScaleRow)) {
    const rps = row.median?.reqPerSec ?? NaN;
    row.vsScaleW1 = rps / scaleBase('scale-w1');
    row.vsScaleClusterS1 = rps / scaleBase('scale-cluster-s1');
  }
  // Ratios against the baselines of the same model (scenario c against the ONNX baselines),
  // repetition by repetition (see pairedRatio).
  for (const row of rows) {
    if (!isThroughputRow(row)) continue;
    const base = (system: string) => rows.find((r) => isThroughputRow(r) && r.def.system === system && r.def.model === row.def.model && !r.def.caching);
    row.vsBullmq = pairedRatio(row, base('bullmq')).median;
    row.vsBullmqBatched = pairedRatio(row, base('bullmq-batched')).median;
    row.vsFloor = pairedRatio(row, base('floor')).median;
  }
  return rows;
}

const medianOf = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? (s[s.length >> 1] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};

/**
 * `metric` of a over b, per repetition (the runs of one repetition index paired), then the median
 * of those ratios. A repetition runs every scenario once, minutes apart at most, while this
 * shared machine's speed drifts by up to 2x over a full run: a ratio within one repetition
 * compares systems on the same machine state, a ratio of two medians may not. Without a common
 * repetition, the ratio of the two median runs.
 */
export function pairedRatio(a: ScenarioRow | undefined, b: ScenarioRow | undefined, metric: (r: ScenarioRun) => number = (r) => r.reqPerSec): { median: number; perRep: number[] } {
  if (!a || !b) return { median: NaN, perRep: [] };
  const perRep: number[] = [];
  for (const x of a.runs) {
    const y = b.runs.find((r) => r.rep === x.rep);
    if (x.ok && y?.ok) perRep.push(metric(x) / metric(y));
  }
  if (perRep.length) return { median: medianOf(perRep), perRep };
  return { median: a.median && b.median ? metric(a.median) / metric(b.median) : NaN, perRep: [] };
}

/** CPU per request of every role together (clients + workers + Redis), in µs; NaN when not measured. */
const cpuPerRequest = (r: ScenarioRun): number => (r.cpu ? r.cpu.usPerRequest.clients + r.cpu.usPerRequest.workers + r.cpu.usPerRequest.redis : NaN);

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
export const ms = (n: number) => (!Number.isFinite(n) ? '-' : n < 1 ? n.toFixed(3) : n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0));
const ratio = (n: number) => (Number.isFinite(n) ? `${n < 10 ? n.toFixed(2) : n.toFixed(1)}x` : '-');
const batch = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');

export function formatTable(rows: readonly ScenarioRow[]): string {
  const header = ['scenario', 'system', 'req/s', 'p50 ms', 'p99 ms', 'avg batch', 'vs plain BullMQ (req/s)', 'vs BullMQ + batching', 'vs floor (req/s)'];
  const body = rows.map((r) => {
    const m = r.median;
    if (!m) return [r.def.title, r.label, 'FAILED', '-', '-', '-', '-', '-', '-'];
    return [r.def.title, r.label, int(m.reqPerSec), ms(m.p50Ms), ms(m.p99Ms), batch(m.avgBatch), ratio(r.vsBullmq), ratio(r.vsBullmqBatched), ratio(r.vsFloor)];
  });
  return alignTable(header, body);
}

/**
 * Low load and overload: offered vs answered req/s, latency of the answered
 * requests, and refusals (INFERQ_QUEUE_FULL) with their own latency.
 */
export function formatLatencyTable(rows: readonly ScenarioRow[]): string {
  const header = ['scenario', 'id', 'offered req/s', 'answered req/s', 'p50 ms', 'p99 ms', 'max ms', 'avg batch', 'refused req/s', 'refusal p50 ms', 'refusal p99 ms', 'errors'];
  const body = rows.map((r) => {
    const m = r.median;
    if (!m) return [r.def.title, r.def.id, 'FAILED', '-', '-', '-', '-', '-', '-', '-', '-', '-'];
    const perS = (n: number) => n / (m.windowMs / 1000);
    const offered = r.def.load?.kind === 'closed' ? `closed, ${r.def.load.inFlight} in flight` : int(m.offeredPerSec);
    return [
      r.def.title,
      r.def.id,
      offered,
      int(m.reqPerSec),
      ms(m.p50Ms),
      ms(m.p99Ms),
      ms(m.latency.maxMs),
      batch(m.avgBatch),
      int(perS(m.rejected)),
      ms(percentile(m.rejections, 50)),
      ms(m.rejectP99Ms),
      int(m.errors + m.skipped),
    ];
  });
  return alignTable(header, body);
}

function alignTable(header: string[], body: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...body.map(line)].join('\n');
}

/** A part's refused share of what it asked for in the window (answered, refused, failed), in %. */
export const refusedPct = (p: PartRun): number => {
  const asked = p.completed + p.rejected + p.errors;
  return asked > 0 ? (100 * p.rejected) / asked : NaN;
};

/** Model time per batch over the window (the workers' stats), ms; NaN when unknown. */
export const batchMs = (r: ScenarioRun): number => (r.counters?.modelMs !== undefined && r.counters.batches > 0 ? r.counters.modelMs / r.counters.batches : NaN);

/**
 * Tenants (h) and priorities (i): one line per part of each scenario (a
 * tenant, a priority class), offered vs answered, refusals, latency of the
 * answered requests; and the model time per batch of the run.
 */
export function formatPartsTable(rows: readonly ScenarioRow[]): string {
  const header = ['scenario', 'id', 'part', 'tenant', 'priority', 'offered req/s', 'answered req/s', 'refused %', 'p50 ms', 'p99 ms', 'max ms', 'errors', 'avg batch', 'batch ms'];
  const body: string[][] = [];
  for (const r of rows) {
    const m = r.median;
    for (const p of r.def.parts ?? []) {
      const x = m?.parts?.[p.name];
      const head = [r.def.title, r.def.id, p.name, p.tenant ?? 'default', p.priority ?? 'normal'];
      if (!m || !x) {
        body.push([...head, 'FAILED', '-', '-', '-', '-', '-', '-', '-', '-']);
        continue;
      }
      const offered = p.load.kind === 'closed' ? `closed, ${p.load.inFlight} in flight` : int(x.offeredPerSec);
      body.push([...head, offered, int(x.reqPerSec), pct(refusedPct(x)), ms(x.p50Ms), ms(x.p99Ms), ms(x.latency.maxMs), int(x.errors + x.skipped), batch(m.avgBatch), ms(batchMs(m))]);
    }
  }
  return alignTable(header, body);
}

/** What the noisy-neighbour fleet serves with full batches at the model time per batch measured in a run. */
const measuredCapacity = (r: ScenarioRun): number => (NOISY.workers * NOISY.numWorkers * NOISY.maxBatchSize * 1000) / batchMs(r);

const pct = (n: number) => (Number.isFinite(n) ? `${n < 10 ? n.toFixed(2) : n.toFixed(1)} %` : '-');

/**
 * Scaling (f): req/s, latency, ratios to scale-w1 and scale-cluster-s1, and
 * the busiest Redis main thread (the bench's one redis-server, or the
 * busiest master of the cluster) with what it holds.
 */
export function formatScaleTable(rows: readonly ScenarioRow[]): string {
  const header = ['scenario', 'id', 'worker procs', 'shards', 'req/s', 'p50 ms', 'p99 ms', 'avg batch', 'vs scale-w1', 'vs scale-cluster-s1', 'busiest Redis main thread (cores)'];
  const body = rows.map((r) => {
    const m = r.median;
    const procs = String(r.def.workers ?? '-');
    const shards = String(r.def.queueShards ?? 1);
    if (!m) return [r.def.title, r.def.id, procs, shards, 'FAILED', '-', '-', '-', '-', '-', '-'];
    const busiest = busiestNode(m);
    const redis = busiest ? `${busiest.mainThreadCores.toFixed(2)} (${busiest.holds?.length ? busiest.holds.join(', ') : 'nothing of the model'})` : '-';
    return [r.def.title, r.def.id, procs, shards, int(m.reqPerSec), ms(m.p50Ms), ms(m.p99Ms), batch(m.avgBatch), ratio(r.vsScaleW1), ratio(r.vsScaleClusterS1), redis];
  });
  return alignTable(header, body);
}

/** The Redis node (standalone or master) whose main thread was busiest in a run. */
function busiestNode(m: ScenarioRun) {
  const nodes = (m.cpu?.redisNodes ?? []).filter((n) => n.role !== 'replica' && Number.isFinite(n.mainThreadCores));
  return nodes.sort((a, b) => b.mainThreadCores - a.mainThreadCores)[0];
}

/**
 * Below the scaling table: each row's Redis nodes (main thread and all
 * threads, what each holds) and the machine's CPU, then where one shard's
 * ceiling is, from the numbers of this run.
 */
export function formatScaleNotes(rows: readonly ScenarioRow[], cpus: number): string {
  const out: string[] = [];
  for (const r of rows) {
    const m = r.median;
    if (!m?.cpu) continue;
    const { cores } = m.cpu;
    const nodes = m.cpu.redisNodes
      .map((n) => {
        const holds = n.holds?.length ? n.holds.join(' + ') : 'nothing of the model';
        const what = n.role === 'replica' ? `replica of ${n.masterOf ?? '?'}` : n.role === 'standalone' ? 'the one Redis' : `master: ${holds}`;
        return `${n.node} (${what}) main thread ${n.mainThreadCores.toFixed(2)}, all threads ${n.cores.toFixed(2)}`;
      })
      .join('; ');
    const total = cores.clients + cores.workers + cores.redis;
    const machine = m.cpu.machine;
    const whole = machine === undefined ? '' : `; the whole machine ${machine.toFixed(2)} (other load ${Math.max(0, machine - total).toFixed(2)})`;
    const mainThreads = m.cpu.redisNodes.filter((n) => n.role !== 'replica').reduce((sum, n) => sum + n.mainThreadCores, 0);
    const { usPerRequest: us } = m.cpu;
    out.push(
      `${r.def.id}: Redis ${nodes}. CPU: clients ${cores.clients.toFixed(2)} + workers ${cores.workers.toFixed(2)} + Redis ${cores.redis.toFixed(2)} = ${total.toFixed(2)} of ${cpus} cores busy${whole}. ` +
        `Per request: clients ${int(us.clients)} µs, workers ${int(us.workers)} µs, Redis ${int(us.redis)} µs (main threads of ${r.def.redis === 'cluster' ? 'the masters' : 'the one Redis'} ${((mainThreads * 1e6) / m.reqPerSec).toFixed(1)} µs).`,
    );
  }
  const ceiling = shardCeiling(rows, cpus);
  if (ceiling) out.push(ceiling);
  return out.map((l) => `  - ${l}`).join('\n');
}

/**
 * A machine this busy (share of its cores) is the bound, whatever one Redis
 * thread does: with several single-threaded processes per core, each of them
 * also waiting on the others' round trips, a machine does not get much busier.
 */
const MACHINE_BUSY = 0.8;
/** A Redis main thread this busy is saturated: it is the bound. */
const THREAD_SATURATED = 0.9;

/**
 * Where one shard's ceiling is, in one sentence from this run: every command
 * of one shard runs on the main thread of the one Redis (one master) that
 * holds its hash slot; the sentence says how busy that thread was, what a
 * linear extrapolation puts the shard's ceiling at, and whether that thread
 * or the machine's cores were the bound here.
 */
export function shardCeiling(rows: readonly ScenarioRow[], cpus: number): string | undefined {
  const pick = rows.find((r) => r.def.id === 'scale-cluster-s1' && r.median?.cpu) ?? rows.find((r) => r.def.id === 'scale-w2' && r.median?.cpu) ?? rows.find((r) => isScaleRow(r) && (r.def.queueShards ?? 1) === 1 && r.median?.cpu);
  const m = pick?.median;
  const node = m ? busiestNode(m) : undefined;
  if (!pick || !m?.cpu || !node || !(node.mainThreadCores > 0)) return undefined;
  const { cores } = m.cpu;
  const total = cores.clients + cores.workers + cores.redis;
  const machine = m.cpu.machine ?? total;
  const where = node.role === 'standalone' ? `the one redis-server (${node.node})` : `the master holding it (${node.node})`;
  const us = (node.mainThreadCores * 1e6) / m.reqPerSec;
  const projected = m.reqPerSec / node.mainThreadCores;
  let verdict: string;
  if (node.mainThreadCores >= THREAD_SATURATED) {
    verdict = `that thread was saturated here: it is the ceiling of one shard, and more worker processes on the same shard add nothing; more shards (on more masters) do`;
  } else if (machine >= MACHINE_BUSY * cpus) {
    const other = machine - total;
    verdict =
      `here it never got there: the ${cpus} cores were ${((machine / cpus) * 100).toFixed(0)} % busy (this bench's clients ${cores.clients.toFixed(2)}, workers ${cores.workers.toFixed(2)}, Redis ${cores.redis.toFixed(2)}` +
      `${other > 0.05 ? `, other load on the machine ${other.toFixed(2)}` : ''} cores), so the machine's CPU, shared by every process, was the bound, not one Redis thread`;
  } else {
    verdict = `here neither that thread nor the machine (${machine.toFixed(2)} of ${cpus} cores busy) was saturated: the bound was the load (requests in flight) or latency`;
  }
  return (
    `Where one shard's ceiling is: every command of a shard (its queue, flights, cache, inboxes) runs on the main thread of the one Redis that holds its hash slot, ` +
    `in ${pick.def.id} ${where}, busy ${node.mainThreadCores.toFixed(2)} of a core at ${int(m.reqPerSec)} req/s (${us.toFixed(1)} µs of that thread per request); ` +
    `by linear extrapolation one shard tops out near ${int(projected)} req/s when that thread reaches one core; ${verdict}.`
  );
}

/** Everything the table cannot show: failures, errors, the system's own counters, stderr warnings, the spread of repetitions. */
export function formatNotes(rows: readonly ScenarioRow[]): string {
  const out: string[] = [];
  for (const r of rows) {
    const notes: string[] = [];
    for (const f of r.runs.filter((x) => !x.ok)) notes.push(`rep ${f.rep} FAILED: ${firstLines(f.failure ?? 'unknown', 6)}`);
    const by = r.def.medianBy;
    if (r.runs.length > 1 && by) {
      notes.push(`${by.part} ${by.metric} ms per repetition: ${r.runs.map((x) => (x.ok ? ms((by.metric === 'p50' ? x.parts?.[by.part]?.p50Ms : x.parts?.[by.part]?.p99Ms) ?? NaN) : 'failed')).join(', ')} (median shown)`);
    } else if (r.runs.length > 1) {
      notes.push(
        r.def.load?.kind === 'open'
          ? `p99 ms per repetition: ${r.runs.map((x) => (x.ok ? ms(x.p99Ms) : 'failed')).join(', ')} (median shown)`
          : `req/s per repetition: ${r.runs.map((x) => (x.ok ? int(x.reqPerSec) : 'failed')).join(', ')} (median shown)`,
      );
    }
    const m = r.median;
    if (m) {
      notes.push(`${int(m.completed)} requests in ${+(m.windowMs / 1000).toFixed(1)} s, mean ${ms(m.meanMs)} ms, max ${ms(m.latency.maxMs)} ms; processes ready in ${(m.startupMs / 1000).toFixed(1)} s`);
      if (m.cpu) {
        const { cores, usPerRequest: us } = m.cpu;
        notes.push(
          `CPU over the window (cores busy / CPU us per request): clients ${cores.clients.toFixed(2)} / ${int(us.clients)}, ` +
            `workers ${cores.workers.toFixed(2)} / ${int(us.workers)}, redis-server ${cores.redis.toFixed(2)} / ${int(us.redis)}`,
        );
      }
      if (m.skipped > 0) notes.push(`${int(m.skipped)} due requests not sent by the open-loop generator (too many unanswered)`);
      if (m.rejected > 0) notes.push(`${int(m.rejected)} refused (INFERQ_QUEUE_FULL): p50 ${ms(percentile(m.rejections, 50))} ms, p99 ${ms(m.rejectP99Ms)} ms, max ${ms(m.rejections.maxMs)} ms`);
      if (m.errors > 0) notes.push(`${int(m.errors)} failed requests: ${m.errorSamples.map(([msg, n]) => `${n}x ${msg}`).join(' | ')}`);
      const c = m.counters;
      if (c && r.def.system === 'inferq') {
        const looked = (c.cacheHits ?? 0) + (c.cacheMisses ?? 0);
        const parts = [`stats over the window: ${int(c.items)} items in ${int(c.batches)} model calls`];
        if (r.def.caching) {
          parts.push(`cache hits ${int(c.cacheHits ?? 0)} (${looked ? (((c.cacheHits ?? 0) / looked) * 100).toFixed(1) : '-'} % of lookups)`);
          parts.push(`coalesced ${int(c.coalesced ?? 0)}, worker-side hits ${int(c.workerCacheHits ?? 0)}`);
          parts.push(`repeated inputs sent ${int(m.repeats)} of ${int(m.sent)}`);
        }
        if (c.errors || c.timeouts || c.deadlineDrops) parts.push(`errors ${int(c.errors ?? 0)}, timeouts ${int(c.timeouts ?? 0)}, deadline drops ${int(c.deadlineDrops ?? 0)}`);
        notes.push(parts.join('; '));
      }
    }
    for (const x of r.runs) {
      for (const role of ['workers', 'clients'] as const) {
        const d = x.stderr?.[role];
        if (d && d.warnings + d.errors + d.other > 0) {
          notes.push(`rep ${x.rep} ${role} stderr: ${d.errors} error, ${d.warnings} warn, ${d.other} other lines; e.g. ${d.samples.map((s) => s.slice(0, 300)).join(' || ')}`);
        }
      }
    }
    if (notes.length) out.push(`${r.def.id} (${r.label}):\n${notes.map((n) => `  - ${n}`).join('\n')}`);
  }
  return out.join('\n');
}

export function checkGoals(rows: readonly ScenarioRow[], pingIdle: LatencySummary): Goal[] {
  const row = (id: string) => rows.find((r) => r.def.id === id);
  const get = (id: string) => row(id)?.median;
  const goals: Goal[] = [];
  const need = (name: string, ids: string[], check: (runs: ScenarioRun[]) => Goal): void => {
    const runs = ids.map(get);
    if (runs.some((r) => r === undefined)) {
      const missing = ids.filter((_, i) => runs[i] === undefined).join(', ');
      goals.push({ name, status: 'N/A', detail: `needs ${missing} (not run or failed)` });
    } else {
      goals.push(check(runs as ScenarioRun[]));
    }
  };
  // req/s of a over b: the median of the per-repetition ratios (pairedRatio), each listed.
  const atLeast = (name: string, a: ScenarioRun, b: ScenarioRun, factor: number, what: string): Goal => {
    const p = pairedRatio(row(a.id), row(b.id));
    const r = p.median;
    const reps = p.perRep.length > 1 ? ` (per repetition: ${p.perRep.map(ratio).join(', ')})` : '';
    return {
      name,
      status: r >= factor ? 'PASS' : 'FAIL',
      detail: `${int(a.reqPerSec)} vs ${int(b.reqPerSec)} req/s (medians); ${ratio(r)} of ${what}${reps} (goal >= ${factor}x)`,
    };
  };

  // What the floor reaches against the same baseline says whether a goal is reachable on this machine at all.
  const floorContext = (model: 'noop' | 'onnx', g: Goal): Goal => {
    const f = get(`${model}-floor`);
    const b = get(`${model}-bullmq`);
    return f && b ? { ...g, detail: `${g.detail}; the floor reaches ${ratio(f.reqPerSec / b.reqPerSec)} of plain BullMQ in this run` } : g;
  };
  need('ONNX: inferq >= 10x plain BullMQ req/s', ['onnx-inferq', 'onnx-bullmq'], ([q, b]) =>
    floorContext('onnx', atLeast('ONNX: inferq >= 10x plain BullMQ req/s', q!, b!, 10, 'plain BullMQ')),
  );
  need('ONNX: inferq p99 no worse than plain BullMQ', ['onnx-inferq', 'onnx-bullmq'], ([q, b]) => ({
    name: 'ONNX: inferq p99 no worse than plain BullMQ',
    status: q!.p99Ms <= b!.p99Ms ? 'PASS' : 'FAIL',
    detail: `p99 ${ms(q!.p99Ms)} ms vs ${ms(b!.p99Ms)} ms (p50 ${ms(q!.p50Ms)} vs ${ms(b!.p50Ms)} ms)`,
  }));
  need('no-op: inferq >= 3x plain BullMQ req/s', ['noop-inferq', 'noop-bullmq'], ([q, b]) =>
    floorContext('noop', atLeast('no-op: inferq >= 3x plain BullMQ req/s', q!, b!, 3, 'plain BullMQ')),
  );
  need('no-op: inferq >= 40 % of the floor req/s', ['noop-inferq', 'noop-floor'], ([q, f]) => atLeast('no-op: inferq >= 40 % of the floor req/s', q!, f!, 0.4, 'the floor'));
  // The performance issue's goals (#11): against the floor and the capable team's BullMQ build.
  need('no-op: inferq >= 0.70x the floor req/s', ['noop-inferq', 'noop-floor'], ([q, f]) => atLeast('no-op: inferq >= 0.70x the floor req/s', q!, f!, 0.7, 'the floor'));
  need('no-op: inferq >= 3x BullMQ + batching req/s', ['noop-inferq', 'noop-bullmq-batched'], ([q, b]) => {
    const g = atLeast('no-op: inferq >= 3x BullMQ + batching req/s', q!, b!, 3, 'BullMQ + batching');
    return { ...g, detail: `${g.detail}; p99 ${ms(q!.p99Ms)} vs ${ms(b!.p99Ms)} ms; avg batch ${batch(q!.avgBatch)} vs ${batch(b!.avgBatch)}` };
  });
  need('no-op: inferq CPU per request <= 1.4x the floor\'s', ['noop-inferq', 'noop-floor'], ([q, f]) => {
    const name = 'no-op: inferq CPU per request <= 1.4x the floor\'s';
    const p = pairedRatio(row('noop-inferq'), row('noop-floor'), cpuPerRequest);
    const parts = (r: ScenarioRun) => (r.cpu ? `${int(cpuPerRequest(r))} µs (clients ${int(r.cpu.usPerRequest.clients)}, workers ${int(r.cpu.usPerRequest.workers)}, Redis ${int(r.cpu.usPerRequest.redis)})` : '-');
    if (!Number.isFinite(p.median)) return { name, status: 'N/A', detail: 'CPU not measured' };
    return { name, status: p.median <= 1.4 ? 'PASS' : 'FAIL', detail: `${parts(q!)} vs ${parts(f!)} (medians); ${ratio(p.median)}${p.perRep.length > 1 ? ` (per repetition: ${p.perRep.map(ratio).join(', ')})` : ''} (goal <= 1.4x)` };
  });
  need('ONNX: inferq >= 0.95x the floor req/s', ['onnx-inferq', 'onnx-floor'], ([q, f]) => atLeast('ONNX: inferq >= 0.95x the floor req/s', q!, f!, 0.95, 'the floor'));
  need('ONNX: inferq >= 1.5x BullMQ + batching req/s', ['onnx-inferq', 'onnx-bullmq-batched'], ([q, b]) => {
    const g = atLeast('ONNX: inferq >= 1.5x BullMQ + batching req/s', q!, b!, 1.5, 'BullMQ + batching');
    return { ...g, detail: `${g.detail}; avg batch ${batch(q!.avgBatch)} vs ${batch(b!.avgBatch)}` };
  });
  need('ONNX: inferq p99 no worse than either BullMQ system', ['onnx-inferq', 'onnx-bullmq', 'onnx-bullmq-batched'], ([q, b, bb]) => ({
    name: 'ONNX: inferq p99 no worse than either BullMQ system',
    status: q!.p99Ms <= b!.p99Ms && q!.p99Ms <= bb!.p99Ms ? 'PASS' : 'FAIL',
    detail: `p99 ${ms(q!.p99Ms)} ms vs plain BullMQ ${ms(b!.p99Ms)} ms and BullMQ + batching ${ms(bb!.p99Ms)} ms`,
  }));
  need('1 in flight, defaults: p50 <= the model\'s batch-1 time + 5 ms', ['lowload-seq-inferq'], ([l]) => ({
    name: '1 in flight, defaults: p50 <= the model\'s batch-1 time + 5 ms',
    // The low-load scenarios use the no-op model: its batch-1 time is ~0.
    status: l!.p50Ms <= 5 ? 'PASS' : 'FAIL',
    detail: `p50 ${ms(l!.p50Ms)} ms, p99 ${ms(l!.p99Ms)} ms (no-op model: batch-1 time ~0, goal p50 <= 5 ms)`,
  }));
  need('caching on: client CPU per request <= 1.2x caching off', ['cache-inferq', 'onnx-inferq'], ([c, o]) => {
    const name = 'caching on: client CPU per request <= 1.2x caching off';
    const p = pairedRatio(row('cache-inferq'), row('onnx-inferq'), (r) => r.cpu?.usPerRequest.clients ?? NaN);
    if (!Number.isFinite(p.median)) return { name, status: 'N/A', detail: 'CPU not measured' };
    return {
      name,
      status: p.median <= 1.2 ? 'PASS' : 'FAIL',
      detail: `clients ${int(c!.cpu!.usPerRequest.clients)} vs ${int(o!.cpu!.usPerRequest.clients)} µs per request (medians; (c) with 50 % repeats vs (b)); ${ratio(p.median)}${p.perRep.length > 1 ? ` (per repetition: ${p.perRep.map(ratio).join(', ')})` : ''} (goal <= 1.2x)`,
    };
  });
  need('in-process cache hits: p50 < 50 µs', ['cache-local-inferq'], ([c]) => {
    const idle = c!.localHitIdle;
    const hits = c!.hits;
    const us = (x: number) => `${(x * 1000).toFixed(1)} µs`;
    const underLoad = hits.count
      ? `; under the load, as callers saw them (a hit also waits behind the process's other requests on its event loop): ${int(hits.count)} hits (both tiers), p50 ${us(percentile(hits, 50))}, p99 ${ms(percentile(hits, 99))} ms`
      : '';
    if (!idle || idle.count === 0) return { name: 'in-process cache hits: p50 < 50 µs', status: 'FAIL', detail: `no in-process hit timed${underLoad}` };
    const p50 = percentile(idle, 50);
    return {
      name: 'in-process cache hits: p50 < 50 µs',
      status: p50 < 0.05 ? 'PASS' : 'FAIL',
      detail: `${int(idle.count)} hits timed one at a time after the window: p50 ${us(p50)}, p99 ${us(percentile(idle, 99))}${underLoad}`,
    };
  });
  for (const kind of ['seq', '50rps'] as const) {
    const name = `low load (${kind === 'seq' ? '1 in flight' : '50 req/s'}): defaults (eager) vs --batch-policy timeout`;
    const eagerId = `lowload-${kind}-inferq`;
    const timeoutId = `${eagerId}-timeout`;
    if (get(eagerId) && !rows.some((r) => r.def.id === timeoutId)) {
      const e = get(eagerId)!;
      goals.push({ name, status: 'INFO', detail: `defaults: p50 ${ms(e.p50Ms)} ms, p99 ${ms(e.p99Ms)} ms (${timeoutId} not run: --only ${timeoutId})` });
      continue;
    }
    need(name, [eagerId, timeoutId], ([e, t]) => ({
      name,
      status: 'INFO',
      detail: `p50 ${ms(e!.p50Ms)} vs ${ms(t!.p50Ms)} ms, p99 ${ms(e!.p99Ms)} vs ${ms(t!.p99Ms)} ms`,
    }));
  }
  need('overload: accepted p99 at 5x within 2x of the p99 at 1x', ['overload-5x', 'overload-1x'], ([o, n]) => {
    const r = o!.p99Ms / n!.p99Ms;
    return {
      name: 'overload: accepted p99 at 5x within 2x of the p99 at 1x',
      status: r <= 2 ? 'PASS' : 'FAIL',
      detail: `p99 ${ms(o!.p99Ms)} vs ${ms(n!.p99Ms)} ms = ${ratio(r)} (goal <= 2x); answered ${int(o!.reqPerSec)} vs ${int(n!.reqPerSec)} req/s of ${int(o!.offeredPerSec)} / ${int(n!.offeredPerSec)} offered`,
    };
  });
  need('overload: refusals (INFERQ_QUEUE_FULL) at 5x answered in < 5 ms p99', ['overload-5x'], ([o]) => ({
    name: 'overload: refusals (INFERQ_QUEUE_FULL) at 5x answered in < 5 ms p99',
    status: o!.rejected === 0 ? 'FAIL' : o!.rejectP99Ms < 5 ? 'PASS' : 'FAIL',
    detail: o!.rejected === 0
      ? 'no refusal in the window'
      : `${int(o!.rejected)} refusals: p50 ${ms(percentile(o!.rejections, 50))} ms, p99 ${ms(o!.rejectP99Ms)} ms, max ${ms(o!.rejections.maxMs)} ms`,
  }));
  // (h) noisy neighbour: every figure per repetition, then the median (as pairedRatio does for req/s).
  const perRep = (id: string, f: (r: ScenarioRun) => number): number[] => (row(id)?.runs ?? []).filter((r) => r.ok).map(f).filter(Number.isFinite);
  const list = (xs: number[], fmt: (n: number) => string) => (xs.length > 1 ? ` (per repetition: ${xs.map(fmt).join(', ')})` : '');
  const partOf = (r: ScenarioRun, name: string): PartRun | undefined => r.parts?.[name];
  need('noisy neighbour: tenant B refused <= 1 %', ['noisy-neighbour'], ([n]) => {
    const name = 'noisy neighbour: tenant B refused <= 1 %';
    const xs = perRep('noisy-neighbour', (r) => (partOf(r, 'B') ? refusedPct(partOf(r, 'B') as PartRun) : NaN));
    const v = medianOf(xs);
    const b = partOf(n!, 'B');
    const a = partOf(n!, 'A');
    return {
      name,
      status: Number.isFinite(v) && v <= 1 ? 'PASS' : 'FAIL',
      detail: `B refused ${pct(v)}${list(xs, pct)} (median run: ${int(b?.rejected ?? NaN)} of ${int((b?.completed ?? 0) + (b?.rejected ?? 0) + (b?.errors ?? 0))}); A refused ${a ? pct(refusedPct(a)) : '-'} (goal <= 1 %)`,
    };
  });
  need('noisy neighbour: tenant B p99 <= 2x B alone', ['noisy-neighbour', 'noisy-neighbour-alone'], ([n, alone]) => {
    const name = 'noisy neighbour: tenant B p99 <= 2x B alone';
    const p = pairedRatio(row('noisy-neighbour'), row('noisy-neighbour-alone'), (r) => partOf(r, 'B')?.p99Ms ?? NaN);
    const b = partOf(n!, 'B');
    const b0 = partOf(alone!, 'B');
    return {
      name,
      status: p.median <= 2 ? 'PASS' : 'FAIL',
      detail: `B p99 ${ms(b?.p99Ms ?? NaN)} ms with A vs ${ms(b0?.p99Ms ?? NaN)} ms alone (median runs); ${ratio(p.median)}${list(p.perRep, ratio)}; p50 ${ms(b?.p50Ms ?? NaN)} vs ${ms(b0?.p50Ms ?? NaN)} ms (${ratio((b?.p50Ms ?? NaN) / (b0?.p50Ms ?? NaN))}) (goal <= 2x)`,
    };
  });
  // A with no B in the same run: what the flood gets of the fleet anyway (the fleet's own goodput under it).
  const floodAlone = (n: ScenarioRun): string => {
    const alone = get('noisy-neighbour-flood-alone');
    const a0 = alone ? partOf(alone, 'A') : undefined;
    const a = partOf(n, 'A');
    if (!a0 || !a) return '';
    const p = pairedRatio(row('noisy-neighbour'), row('noisy-neighbour-flood-alone'), (r) => partOf(r, 'A')?.reqPerSec ?? NaN);
    return `A alone (noisy-neighbour-flood-alone) answered ${int(a0.reqPerSec)} req/s, avg batch ${batch(alone!.avgBatch)}: A next to B got ${ratio(p.median)} of that${list(p.perRep, ratio)}; `;
  };
  need('noisy neighbour: tenant A >= 90 % of the capacity B leaves', ['noisy-neighbour'], ([n]) => {
    const name = 'noisy neighbour: tenant A >= 90 % of the capacity B leaves';
    const share = (r: ScenarioRun) => {
      const a = partOf(r, 'A');
      const b = partOf(r, 'B');
      return a && b ? a.reqPerSec / (NOISY.capacityPerSec - b.reqPerSec) : NaN;
    };
    const xs = perRep('noisy-neighbour', share);
    const v = medianOf(xs);
    const a = partOf(n!, 'A');
    const b = partOf(n!, 'B');
    return {
      name,
      status: v >= 0.9 ? 'PASS' : 'FAIL',
      detail:
        `A answered ${int(a?.reqPerSec ?? NaN)} req/s of ${int(NOISY.capacityPerSec)} (capacity) - ${int(b?.reqPerSec ?? NaN)} (B) in the median run; ` +
        `${pct(100 * v)} of what B leaves${list(xs, (x) => pct(100 * x))}; the whole fleet answered ${int(n!.reqPerSec)} req/s, avg batch ${batch(n!.avgBatch)} of ${NOISY.maxBatchSize}, ` +
        `${floodAlone(n!)}batch time ${ms(batchMs(n!))} ms (a sleep of ${SLEEP_MODEL_COST_MS} ms that a busy machine stretches): at that batch time full batches would serve ${int(measuredCapacity(n!))} req/s, of which A got ${pct((100 * (a?.reqPerSec ?? NaN)) / (measuredCapacity(n!) - (b?.reqPerSec ?? NaN)))} of what B left (goal >= 90 % of the nominal ${int(NOISY.capacityPerSec)} - B)`,
    };
  });
  // (i) priority: the high trickle's p50 against the model time per batch of the same run.
  need('priority: high p50 <= 2 batch times behind a low backlog', ['priority'], ([p]) => {
    const name = 'priority: high p50 <= 2 batch times behind a low backlog';
    const xs = perRep('priority', (r) => (partOf(r, 'high')?.p50Ms ?? NaN) / batchMs(r));
    const v = medianOf(xs);
    const h = partOf(p!, 'high');
    const low = partOf(p!, 'low');
    return {
      name,
      status: v <= 2 ? 'PASS' : 'FAIL',
      detail:
        `high p50 ${ms(h?.p50Ms ?? NaN)} ms, p99 ${ms(h?.p99Ms ?? NaN)} ms, batch time ${ms(batchMs(p!))} ms (model time per batch, the workers' stats) in the median run; ` +
        `p50 = ${v.toFixed(2)} batch times${list(xs, (x) => x.toFixed(2))}; the low backlog: ${int(low?.reqPerSec ?? NaN)} req/s answered, p50 ${ms(low?.p50Ms ?? NaN)} ms (goal <= 2)`,
    };
  });
  if (row('priority-normal')) {
    need('priority: the same trickle at normal (comparison)', ['priority-normal'], ([p]) => {
      const x = partOf(p!, 'normal');
      const h = get('priority') ? partOf(get('priority')!, 'high') : undefined;
      return {
        name: 'priority: the same trickle at normal (comparison)',
        status: 'INFO',
        detail: `normal p50 ${ms(x?.p50Ms ?? NaN)} ms, p99 ${ms(x?.p99Ms ?? NaN)} ms (high: p50 ${ms(h?.p50Ms ?? NaN)}, p99 ${ms(h?.p99Ms ?? NaN)} ms); batch time ${ms(batchMs(p!))} ms`,
      };
    });
  }
  need('cache hits (c): Redis-tier hit <= 1.5x a PING in the same loaded processes', ['cache-inferq'], ([c]) => {
    const hits = c!.hits;
    const idle = mean(pingIdle);
    const loaded = c!.pingUnderLoad ? mean(c!.pingUnderLoad) : NaN;
    const hitMean = mean(hits);
    const detail = hits.count === 0
      ? 'no cache hits in the window'
      : `${int(hits.count)} hits: avg ${ms(hitMean)} ms (p50 ${ms(percentile(hits, 50))}, p99 ${ms(percentile(hits, 99))}) = ` +
        `${ratio(hitMean / idle)} an idle PING round trip (avg ${ms(idle)} ms, p50 ${ms(percentile(pingIdle, 50))}) and ` +
        `${ratio(hitMean / loaded)} a PING round trip timed in the client processes under the same load (avg ${ms(loaded)} ms, p50 ${c!.pingUnderLoad ? ms(percentile(c!.pingUnderLoad, 50)) : '-'}) (goal <= 1.5x)`;
    const status: GoalStatus = hits.count === 0 || !Number.isFinite(loaded) ? 'FAIL' : hitMean / loaded <= 1.5 ? 'PASS' : 'FAIL';
    return { name: 'cache hits (c): Redis-tier hit <= 1.5x a PING in the same loaded processes', status, detail };
  });
  return goals;
}

export function formatGoals(goals: readonly Goal[]): string {
  return goals.map((g) => `  [${g.status}] ${g.name}\n         ${g.detail}`).join('\n');
}

function firstLines(text: string, n: number): string {
  const lines = text.split('\n');
  return lines.slice(0, n).join('\n    ') + (lines.length > n ? `\n    ... (${lines.length - n} more lines)` : '');
}

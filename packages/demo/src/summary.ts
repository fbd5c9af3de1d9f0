/**
 * The run's summary: one object (the HTML report renders it too) and its
 * text form for the terminal. Two sources, kept apart on purpose: what the
 * callers observed (every request's record) and what inferq itself
 * counted in Redis (readStats). When they disagree, that is worth seeing.
 */
import type { InferenceStats } from '@inferq/core';
import type { DemoOptions } from './options.js';
import type { Outcome, RequestRecord } from './protocol.js';
import {
  countOutcomes,
  isOk,
  latencyStats,
  loadWindow,
  percentile,
  sortedLatencies,
  workerShares,
  type LatencyStats,
  type WorkerShare,
} from './metrics.js';

/** Where Redis came from, or why there is none. */
export type RunMode =
  | { kind: 'external'; url: string; version: string }
  | { kind: 'local'; url: string; version: string }
  | { kind: 'cluster'; nodes: string; version: string }
  | { kind: 'embedded'; reason: string };

/** What the in-process mode counts instead of Redis stats. */
export interface EmbeddedCounts {
  modelCalls: number;
  modelItems: number;
  cacheHitRate: number;
  /** Cache misses that joined an identical computation in flight: misses minus items submitted to the batcher. */
  coalesced: number;
  timeouts: number;
}

export interface ClientRow {
  client: number;
  pid: number | undefined;
  requests: number;
  ok: number;
  failed: number;
  hitRate: number;
  p50: number;
  p99: number;
  reqPerSec: number;
}

export interface DemoSummary {
  mode: RunMode;
  options: DemoOptions;
  model: string;
  prefix: string;
  requests: number;
  outcomes: Record<Outcome, number>;
  loadSeconds: number;
  /** Wall time of the whole demo, startup included, s. */
  wallSeconds: number;
  startupSeconds: number;
  throughput: number;
  latency: LatencyStats;
  latencyHit: LatencyStats;
  latencyComputed: LatencyStats;
  /** Requests issued by the open loop (Poisson arrivals) and their latency. */
  latencyOpen: LatencyStats;
  openRequests: number;
  /** Hits among successful requests, as callers saw them. */
  observedHitRate: number;
  /** Avg items per model call, and where the number comes from. */
  avgBatchSize: number;
  modelCalls: number;
  avgModelTimeMs: number | undefined;
  coalesced: number;
  errors: number;
  timeouts: number;
  errorCodes: Array<{ code: string; count: number }>;
  redisStats: InferenceStats | undefined;
  embedded: EmbeddedCounts | undefined;
  clients: ClientRow[];
  workers: Array<WorkerShare & { pid: number | undefined }>;
  /** Error-level log lines each child wrote to stderr (a healthy run has none). */
  childErrorLogs: Array<{ name: string; lines: number; sample: string }>;
}

export interface SummaryInput {
  mode: RunMode;
  options: DemoOptions;
  model: string;
  prefix: string;
  records: readonly RequestRecord[];
  wallSeconds: number;
  startupSeconds: number;
  redisStats?: InferenceStats;
  embedded?: EmbeddedCounts;
  clientPids: ReadonlyMap<number, number>;
  workerPids: ReadonlyMap<string, number>;
  childErrorLogs: Array<{ name: string; lines: number; sample: string }>;
}

export function buildSummary(i: SummaryInput): DemoSummary {
  const { records } = i;
  const outcomes = countOutcomes(records);
  const ok = outcomes.hit + outcomes.computed + outcomes.coalesced;
  const w = loadWindow(records);
  const loadSeconds = Math.max(1e-3, (w.endMs - w.startMs) / 1000);
  const codes = new Map<string, number>();
  for (const r of records) if (r.error) codes.set(r.error, (codes.get(r.error) ?? 0) + 1);

  const byClient = new Map<number, RequestRecord[]>();
  for (const r of records) {
    let l = byClient.get(r.client);
    if (!l) byClient.set(r.client, (l = []));
    l.push(r);
  }
  const clients: ClientRow[] = [...byClient.entries()]
    .sort(([a], [b]) => a - b)
    .map(([client, rs]) => {
      const lat = sortedLatencies(rs);
      const cw = loadWindow(rs);
      const okN = rs.filter(isOk).length;
      return {
        client,
        pid: i.clientPids.get(client),
        requests: rs.length,
        ok: okN,
        failed: rs.length - okN,
        hitRate: okN ? rs.filter((r) => r.outcome === 'hit').length / okN : 0,
        p50: percentile(lat, 50),
        p99: percentile(lat, 99),
        reqPerSec: rs.length / Math.max(1e-3, (cw.endMs - cw.startMs) / 1000),
      };
    });

  const s = i.redisStats;
  const e = i.embedded;
  return {
    mode: i.mode,
    options: i.options,
    model: i.model,
    prefix: i.prefix,
    requests: records.length,
    outcomes,
    loadSeconds,
    wallSeconds: i.wallSeconds,
    startupSeconds: i.startupSeconds,
    throughput: records.length / loadSeconds,
    latency: latencyStats(sortedLatencies(records)),
    latencyHit: latencyStats(sortedLatencies(records, (r) => r.outcome === 'hit')),
    latencyComputed: latencyStats(sortedLatencies(records, (r) => r.outcome === 'computed')),
    latencyOpen: latencyStats(sortedLatencies(records, (r) => r.source === 'open' && isOk(r))),
    openRequests: records.filter((r) => r.source === 'open').length,
    observedHitRate: ok ? outcomes.hit / ok : 0,
    avgBatchSize: s ? s.avgBatchSize : e && e.modelCalls ? e.modelItems / e.modelCalls : 0,
    modelCalls: s ? s.totalBatches : (e?.modelCalls ?? 0),
    avgModelTimeMs: s?.avgModelTimeMs,
    coalesced: s ? s.coalesced : (e?.coalesced ?? 0),
    errors: outcomes.error,
    timeouts: outcomes.timeout,
    errorCodes: [...codes.entries()].map(([code, count]) => ({ code, count })).sort((a, b) => b.count - a.count),
    redisStats: s,
    embedded: e,
    clients,
    workers: workerShares(records).map((ws) => ({ ...ws, pid: i.workerPids.get(ws.worker) })),
    childErrorLogs: i.childErrorLogs,
  };
}

// ---------------------------------------------------------------- text form

export const fmt = {
  int: (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-'),
  ms: (n: number) => (!Number.isFinite(n) ? '-' : n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : Math.round(n).toLocaleString('en-US')),
  pct: (r: number) => (Number.isFinite(r) ? `${(r * 100).toFixed(1)}%` : '-'),
  num: (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : '-'),
};

export function describeMode(m: RunMode): string {
  switch (m.kind) {
    case 'external':
      return `REDIS_URL ${m.url} (Redis ${m.version}); keys under a unique prefix, deleted at the end`;
    case 'local':
      return `local redis-server ${m.version} started for this run at ${m.url}`;
    case 'cluster':
      return `Redis Cluster ${m.nodes} (--redis-cluster, Redis ${m.version}); keys under a unique prefix, deleted at the end`;
    case 'embedded':
      return `EMBEDDED in-process mode (InferenceOptimizer, no Redis, no worker or client processes): ${m.reason}`;
  }
}

/** A plain text table; `right` marks columns aligned right (numbers). */
export function textTable(header: string[], rows: string[][], right: boolean[] = header.map((_, i) => i > 0)): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]) => cells.map((v, c) => (right[c] ? v.padStart(widths[c] as number) : v.padEnd(widths[c] as number))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The main numbers as label/value pairs (the terminal and the report show the same list). */
export function headlineRows(s: DemoSummary): Array<[string, string]> {
  const embedded = s.mode.kind === 'embedded';
  const src = embedded ? 'in-process counters' : 'Redis stats';
  const rows: Array<[string, string]> = [
    ['requests', `${fmt.int(s.requests)} (${fmt.int(s.outcomes.hit)} cache hits, ${fmt.int(s.outcomes.computed)} computed, ${fmt.int(s.outcomes.coalesced)} coalesced)`],
    ['throughput', `${fmt.int(s.throughput)} req/s  (${fmt.num(s.loadSeconds, 1)} s of load; whole demo ${fmt.num(s.wallSeconds, 1)} s, startup ${fmt.num(s.startupSeconds, 1)} s)`],
    ['latency p50/p95/p99', `${fmt.ms(s.latency.p50)} / ${fmt.ms(s.latency.p95)} / ${fmt.ms(s.latency.p99)} ms  (max ${fmt.ms(s.latency.max)} ms; client-observed, all successful requests)`],
    ...(s.latencyHit.count ? [['  cache hits', `p50 ${fmt.ms(s.latencyHit.p50)} ms, p99 ${fmt.ms(s.latencyHit.p99)} ms`] as [string, string]] : []),
    ...(s.latencyComputed.count ? [['  computed', `p50 ${fmt.ms(s.latencyComputed.p50)} ms, p99 ${fmt.ms(s.latencyComputed.p99)} ms`] as [string, string]] : []),
    [
      'load',
      `${s.options.clients} ${embedded ? 'simulated clients' : 'client processes'} x ${s.options.inFlight} in flight (closed loop)` +
        (s.openRequests > 0
          ? ` + ${fmt.int(s.openRequests)} open-loop Poisson arrivals at ${s.options.openRate}/s (their p50 ${fmt.ms(s.latencyOpen.p50)} ms, p99 ${fmt.ms(s.latencyOpen.p99)} ms)`
          : ''),
    ],
    [
      'cache hit rate',
      s.options.useCache
        ? `${fmt.pct(s.observedHitRate)} observed by callers; ${fmt.pct(s.redisStats?.cacheHitRate ?? s.embedded?.cacheHitRate ?? NaN)} at first lookup (${src})`
        : 'cache disabled (--no-cache)',
    ],
    [
      'avg batch size',
      `${fmt.num(s.avgBatchSize, 1)} items per model call (${src}; max ${s.options.batchSize}), ${fmt.int(s.modelCalls)} model calls` +
        (s.avgModelTimeMs !== undefined ? `, ${fmt.ms(s.avgModelTimeMs)} ms each` : ''),
    ],
    ['coalesced', `${fmt.int(s.coalesced)} requests shared an identical computation in flight (${src}${embedded ? ', derived' : ''})`],
    [
      'errors / timeouts',
      `${fmt.int(s.errors)} / ${fmt.int(s.timeouts)}` +
        (s.errorCodes.length ? `  (${s.errorCodes.map((c) => `${c.code} x${c.count}`).join(', ')})` : '') +
        (s.redisStats ? `; Redis stats: ${fmt.int(s.redisStats.errors)} errors, ${fmt.int(s.redisStats.timeouts)} timeouts, ${fmt.int(s.redisStats.deadlineDrops)} deadline drops` : ''),
    ],
  ];
  return rows;
}

/** Per-client rows, shared by the terminal summary and the HTML report. */
export function clientRows(s: DemoSummary): { header: string[]; rows: string[][] } {
  const embedded = s.mode.kind === 'embedded';
  return {
    header: [embedded ? 'simulated client' : 'client process', 'pid', 'requests', 'ok', 'failed', 'hit rate', 'p50 ms', 'p99 ms', 'req/s'],
    rows: s.clients.map((c) => [
      `client ${c.client + 1}`,
      c.pid === undefined ? '-' : String(c.pid),
      fmt.int(c.requests),
      fmt.int(c.ok),
      fmt.int(c.failed),
      fmt.pct(c.hitRate),
      fmt.ms(c.p50),
      fmt.ms(c.p99),
      fmt.int(c.reqPerSec),
    ]),
  };
}

/** Per-worker rows, shared by the terminal summary and the HTML report. */
export function workerRows(s: DemoSummary): { header: string[]; rows: string[][] } {
  return {
    header: ['worker process', 'pid', 'items computed', 'batches (est.)', 'avg batch', 'found in cache', 'results sent'],
    rows: s.workers.map((w) => [
      w.worker,
      w.pid === undefined ? '-' : String(w.pid),
      fmt.int(w.items),
      fmt.int(w.batchesEst),
      w.batchesEst > 0 ? fmt.num(w.items / w.batchesEst, 1) : '-',
      fmt.int(w.foundInCache),
      fmt.int(w.delivered),
    ]),
  };
}

export function clientTable(s: DemoSummary): string {
  const t = clientRows(s);
  return textTable(t.header, t.rows);
}

export function workerTable(s: DemoSummary): string {
  const t = workerRows(s);
  return textTable(t.header, t.rows);
}

export function formatSummary(s: DemoSummary): string {
  const out: string[] = [];
  out.push(`inferq demo: ${describeMode(s.mode)}`);
  out.push('');
  const labelWidth = Math.max(...headlineRows(s).map(([l]) => l.length));
  for (const [label, value] of headlineRows(s)) out.push(`  ${label.padEnd(labelWidth)}  ${value}`);
  if (s.mode.kind === 'embedded') {
    out.push('');
    out.push(`  ${s.options.clients} simulated clients in this one process; no per-process counts in this mode.`);
    out.push('');
    out.push(indent(clientTable(s)));
  } else {
    out.push('');
    out.push(indent(clientTable(s)));
    out.push('');
    out.push(indent(workerTable(s)));
    out.push('  (batches per worker are estimated from the batchSize each result carries; inferq counts batches per model, not per worker)');
  }
  for (const c of s.childErrorLogs) {
    out.push('');
    out.push(`  ! ${c.name} logged ${c.lines} error line(s), e.g.: ${c.sample}`);
  }
  return out.join('\n');
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}

/** Renders InferenceStats (and per-tenant stats) as aligned text tables for terminals. */
import type { InferenceStats, TenantStats } from '@inferq/core';

const fmt = (n: number, digits = 2) => (Number.isInteger(n) ? String(n) : n.toFixed(digits));

export function formatStatsTable(s: InferenceStats): string {
  const rows: Array<[string, string]> = [
    ['model', s.model],
    ['requests', fmt(s.totalRequests)],
    ['cache hits', fmt(s.cacheHits)],
    ['cache misses', fmt(s.cacheMisses)],
    ['cache hit rate', `${(s.cacheHitRate * 100).toFixed(1)} %`],
    ['coalesced (single-flight)', fmt(s.coalesced)],
    ['batches', fmt(s.totalBatches)],
    ['items computed', fmt(s.batchItems)],
    ['avg batch size', fmt(s.avgBatchSize)],
    ['worker cache hits', fmt(s.workerCacheHits)],
    ['errors', fmt(s.errors)],
    ['timeouts', fmt(s.timeouts)],
    ['deadline drops', fmt(s.deadlineDrops)],
    ['poison splits (extra calls)', fmt(s.poisonSplits)],
    ['model timeouts', fmt(s.modelTimeouts)],
    ['isolated calls (after a crash)', fmt(s.isolatedCalls)],
    ['crashed items', fmt(s.crashedItems)],
    ['refused (queue full)', fmt(s.refused)],
    ['avg latency (ms)', fmt(s.avgLatencyMs)],
    ['p50 latency (ms)', fmt(s.p50LatencyMs)],
    ['p95 latency (ms)', fmt(s.p95LatencyMs)],
    ['p99 latency (ms)', fmt(s.p99LatencyMs)],
    ['avg model time / batch (ms)', fmt(s.avgModelTimeMs)],
  ];
  if (s.corruptFields.length > 0) rows.push(['CORRUPT fields (counted as 0)', s.corruptFields.join(', ')]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}

/** One row per tenant: what it asked for and got, the places it holds, its share, weight and cap. */
export function formatTenantTable(rows: readonly TenantStats[]): string {
  if (rows.length === 0) return 'no tenant has made a request or holds a place yet';
  const head = ['tenant', 'requests', 'cache hits', 'refused', 'timeouts', 'p50 ms', 'p99 ms', 'queued', 'share', 'weight', 'cap', 'slot cap'];
  const body = rows.map((r) => [
    r.tenant,
    fmt(r.requests),
    fmt(r.cacheHits),
    fmt(r.refused),
    fmt(r.timeouts),
    fmt(r.p50LatencyMs),
    fmt(r.p99LatencyMs),
    fmt(r.queued),
    r.share > 0 ? fmt(r.share) : '-',
    fmt(r.weight),
    r.cap > 0 ? fmt(r.cap) : '-',
    r.slotCap > 0 ? fmt(r.slotCap) : '-',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(head), ...body.map(line)].join('\n');
}

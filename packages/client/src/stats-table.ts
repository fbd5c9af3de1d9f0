/** Renders InferenceStats as an aligned two-column text table for terminals. */
import type { InferenceStats } from '@inferq/core';

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

/**
 * The demo's HTML report: one self-contained file (inline CSS and SVG, no
 * script, no external asset) that can be opened offline, attached to an
 * issue or archived next to a benchmark run. It holds the summary, the
 * configuration that produced it, and the charts that explain the
 * numbers: where latency comes from (cache hits vs computed), how full the
 * batches were, and how throughput and latency moved during the run.
 */
import { cpus, platform, release, totalmem } from 'node:os';
import { batchItemsFromRecords, latencyHistogram, timeSeries, type BatchItems } from './metrics.js';
import type { RequestRecord } from './protocol.js';
import { clientRows, describeMode, fmt, headlineRows, workerRows, type DemoSummary } from './summary.js';
import { esc, formatTick, lineChart, stackedBarChart } from './svg-charts.js';

const COLORS = { hit: '#2e9d5b', computed: '#3b6fd8', coalesced: '#e39b26', failed: '#d64545' };
const WORKER_COLORS = ['#3b6fd8', '#8a5cd1', '#19a3a3', '#d9822b', '#c2407a', '#6b8e23', '#7f7f7f', '#b8860b'];

export interface ReportInput {
  summary: DemoSummary;
  records: readonly RequestRecord[];
  /** Model items by batch size; default: from the records (what workers put in each result). */
  batchItems?: readonly BatchItems[];
  /** Facts about the model served. */
  modelDescription: string;
  generatedAt: Date;
}

export function renderReport(input: ReportInput): string {
  const { summary: s, records } = input;
  const embedded = s.mode.kind === 'embedded';
  const batchItems = input.batchItems ?? batchItemsFromRecords(records);

  const sections = [
    section('Summary', table(headlineRows(s).map(([k, v]) => [k.trim(), v]), ['', ''], !embedded ? undefined : 'Embedded mode: one process, no Redis.') + processTables(s)),
    section(
      'Latency distribution',
      latencyChart(records) +
        note(
          'Client-observed time from <code>infer()</code> to its result, every successful request, log scale. ' +
            'Cache hits cost one Redis round trip; computed requests wait for a batch to fill or age out, then for the model; ' +
            'coalesced requests joined an identical computation already in flight.',
        ),
    ),
    section(
      'Batch sizes',
      batchChart(batchItems, s.options.batchSize) +
        note(
          embedded
            ? 'Items the model computed, by the size of the model call that computed them (counted around the model function).'
            : 'Requests computed by the model, by the <code>batchSize</code> that each worker reports in its results, stacked per worker. ' +
                'Larger batches share the model’s fixed cost per call: on the default model one call of 32 costs far less than 32 calls of 1.',
        ),
    ),
    section('Throughput over time', throughputChart(records) + note('Completed requests per second, in 250 ms bins, by how they were answered.')),
    section('Latency over time', latencyOverTimeChart(records) + note('p50 and p95 of the requests completed in each 250 ms bin (log scale).')),
    section('Configuration', table(configRows(s, input.modelDescription), ['setting', 'value'])),
  ];

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>inferq demo report ${esc(input.generatedAt.toISOString())}</title>
<style>
  body { font: 14px/1.45 system-ui, -apple-system, Segoe UI, sans-serif; color: #222; max-width: 960px; margin: 24px auto; padding: 0 16px; }
  h1 { font-size: 22px; margin: 0 0 4px; }
  h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
  .sub { color: #666; margin-bottom: 12px; }
  .banner { padding: 8px 12px; border-radius: 6px; margin: 10px 0; background: #eef4ff; border: 1px solid #c9dafc; }
  .banner.embedded { background: #fff6e0; border-color: #f0d18a; }
  table { border-collapse: collapse; margin: 6px 0 10px; font-variant-numeric: tabular-nums; }
  th, td { text-align: left; padding: 3px 10px 3px 0; vertical-align: top; }
  th { color: #555; font-weight: 600; border-bottom: 1px solid #ddd; }
  td.n, th.n { text-align: right; }
  .note { color: #555; font-size: 13px; margin: 2px 0 0; }
  svg { max-width: 100%; height: auto; display: block; }
  code { background: #f3f3f3; padding: 0 3px; border-radius: 3px; }
</style>
</head>
<body>
<h1>inferq demo report</h1>
<div class="sub">${esc(input.generatedAt.toString())} &middot; ${fmt.int(s.requests)} requests &middot; ${fmt.int(s.throughput)} req/s &middot; p99 ${fmt.ms(s.latency.p99)} ms</div>
<div class="banner${embedded ? ' embedded' : ''}">${esc(describeMode(s.mode))}</div>
${sections.join('\n')}
</body>
</html>
`;
}

function section(title: string, body: string): string {
  return `<h2>${esc(title)}</h2>\n${body}`;
}

function note(html: string): string {
  return `<p class="note">${html}</p>`;
}

/** A table; cells are text (escaped); a column whose cells all look numeric is right-aligned. */
function table(rows: string[][], header: string[], caption?: string): string {
  const numeric = header.map((_, c) => rows.length > 0 && rows.every((r) => /^[-\d.,%\s]+$/.test(r[c] ?? '')));
  const head = header.some((h) => h) ? `<tr>${header.map((h, c) => `<th${numeric[c] ? ' class="n"' : ''}>${esc(h)}</th>`).join('')}</tr>` : '';
  const body = rows.map((r) => `<tr>${r.map((v, c) => `<td${numeric[c] ? ' class="n"' : ''}>${esc(v)}</td>`).join('')}</tr>`).join('');
  return `${caption ? note(esc(caption)) : ''}<table>${head}${body}</table>`;
}

function processTables(s: DemoSummary): string {
  const clients = clientRows(s);
  let html = `<h3>Clients</h3>` + table(clients.rows, clients.header);
  if (s.mode.kind !== 'embedded') {
    const workers = workerRows(s);
    html +=
      `<h3>Workers</h3>` +
      table(workers.rows, workers.header) +
      note('Batches per worker are estimated from the batch size each result carries (inferq counts batches per model, not per worker).');
  }
  if (s.redisStats) {
    const r = s.redisStats;
    html +=
      `<h3>Redis stats (readStats)</h3>` +
      table(
        [
          ['requests', fmt.int(r.totalRequests)],
          ['cache hits / misses', `${fmt.int(r.cacheHits)} / ${fmt.int(r.cacheMisses)}`],
          ['coalesced', fmt.int(r.coalesced)],
          ['model calls (batches)', fmt.int(r.totalBatches)],
          ['items computed', fmt.int(r.batchItems)],
          ['avg batch size', fmt.num(r.avgBatchSize, 2)],
          ['avg model time per call', `${fmt.ms(r.avgModelTimeMs)} ms`],
          ['found in cache by workers', fmt.int(r.workerCacheHits)],
          ['errors / timeouts / deadline drops', `${fmt.int(r.errors)} / ${fmt.int(r.timeouts)} / ${fmt.int(r.deadlineDrops)}`],
          ['latency p50 / p95 / p99 (histogram estimate)', `${fmt.ms(r.p50LatencyMs)} / ${fmt.ms(r.p95LatencyMs)} / ${fmt.ms(r.p99LatencyMs)} ms`],
        ],
        ['counter', 'value'],
      );
  }
  if (s.childErrorLogs.length) {
    html += `<h3>Errors logged by child processes</h3>` + table(s.childErrorLogs.map((c) => [c.name, String(c.lines), c.sample]), ['process', 'lines', 'example']);
  }
  return html;
}

function latencyChart(records: readonly RequestRecord[]): string {
  const h = latencyHistogram(records);
  const bins = h.edges.length - 1;
  const lo = Math.log10(h.edges[0] as number);
  const ticks: Array<{ at: number; label: string }> = [];
  for (let d = Math.ceil(lo); d <= Math.log10(h.edges[bins] as number) + 1e-9; d++) {
    for (const m of [1, 3]) {
      const v = m * Math.pow(10, d);
      const at = (Math.log10(v) - lo) * 10;
      if (at >= 0 && at <= bins) ticks.push({ at, label: `${formatTick(v)} ms` });
    }
  }
  return stackedBarChart({
    title: 'Latency distribution',
    bars: bins,
    series: [
      { name: 'cache hit', color: COLORS.hit, values: h.counts.hit },
      { name: 'computed', color: COLORS.computed, values: h.counts.computed },
      { name: 'coalesced', color: COLORS.coalesced, values: h.counts.coalesced },
    ],
    xTicks: ticks,
    xLabel: 'latency (ms, log scale)',
    yLabel: 'requests',
    gap: 0.08,
    barLabel: (i) => `${formatTick(h.edges[i] as number)}–${formatTick(h.edges[i + 1] as number)} ms`,
  });
}

function batchChart(items: readonly BatchItems[], maxBatch: number): string {
  const largest = Math.max(maxBatch, ...items.map((b) => b.batchSize));
  const workers = [...new Set(items.map((b) => b.worker))].sort();
  const series = workers.map((w, k) => {
    const values = new Array<number>(largest).fill(0);
    for (const b of items) if (b.worker === w) values[b.batchSize - 1] = (values[b.batchSize - 1] as number) + b.items;
    return { name: w, color: WORKER_COLORS[k % WORKER_COLORS.length] as string, values };
  });
  const every = largest <= 16 ? 1 : largest <= 40 ? 4 : Math.ceil(largest / 10);
  const ticks: Array<{ at: number; label: string }> = [];
  for (let b = 1; b <= largest; b++) if (b === 1 || b % every === 0) ticks.push({ at: b - 0.5, label: String(b) });
  if (items.length === 0) return note('No model calls were recorded.');
  return stackedBarChart({
    title: 'Batch sizes',
    bars: largest,
    series,
    xTicks: ticks,
    xLabel: 'batch size (items per model call)',
    yLabel: 'items computed',
    barLabel: (i) => `batch size ${i + 1}`,
  });
}

function throughputChart(records: readonly RequestRecord[]): string {
  const ts = timeSeries(records, 250);
  const perSec = (v: number[]) => v.map((c) => (c * 1000) / ts.binMs);
  const failed = ts.completed.error.map((v, i) => v + (ts.completed.timeout[i] ?? 0));
  const secondsEvery = niceSeconds(ts.t.length * (ts.binMs / 1000));
  const ticks: Array<{ at: number; label: string }> = [];
  for (let sec = 0; sec <= ts.t.length * (ts.binMs / 1000) + 1e-9; sec += secondsEvery) ticks.push({ at: (sec * 1000) / ts.binMs, label: `${formatTick(sec)} s` });
  return stackedBarChart({
    title: 'Throughput over time',
    bars: ts.t.length,
    series: [
      { name: 'cache hit', color: COLORS.hit, values: perSec(ts.completed.hit) },
      { name: 'computed', color: COLORS.computed, values: perSec(ts.completed.computed) },
      { name: 'coalesced', color: COLORS.coalesced, values: perSec(ts.completed.coalesced) },
      { name: 'failed', color: COLORS.failed, values: perSec(failed) },
    ],
    xTicks: ticks,
    xLabel: 'time since the load started',
    yLabel: 'requests / s',
    gap: 0.1,
    barLabel: (i) => `${formatTick(ts.t[i] ?? 0)}–${formatTick((ts.t[i] ?? 0) + ts.binMs / 1000)} s`,
  });
}

function latencyOverTimeChart(records: readonly RequestRecord[]): string {
  const ts = timeSeries(records, 250);
  return lineChart({
    title: 'Latency over time',
    x: ts.t.map((t) => t + ts.binMs / 2000),
    series: [
      { name: 'p50', color: '#3b6fd8', values: ts.p50 },
      { name: 'p95', color: '#d64545', values: ts.p95, dashed: true },
    ],
    xLabel: 'time since the load started (s)',
    yLabel: 'latency (ms, log scale)',
    logY: true,
  });
}

function niceSeconds(total: number): number {
  for (const s of [1, 2, 5, 10, 15, 30, 60, 120, 300]) if (total / s <= 12) return s;
  return 600;
}

function configRows(s: DemoSummary, modelDescription: string): string[][] {
  const o = s.options;
  const cpu = cpus();
  return [
    ['Redis', describeMode(s.mode)],
    ['model', `${s.model} (builtin:onnx-default)`],
    ['model description', modelDescription],
    ['key prefix', s.mode.kind === 'embedded' ? '-' : s.prefix],
    ['requests', fmt.int(o.requests)],
    ['client processes', s.mode.kind === 'embedded' ? `${o.clients} (simulated in process)` : String(o.clients)],
    ['worker processes', s.mode.kind === 'embedded' ? '- (in-process batcher)' : String(o.workers)],
    ['closed loop: in flight per client', String(o.inFlight)],
    ['open loop: Poisson arrivals / s (all clients)', String(o.openRate)],
    ['input popularity', `Zipf s=${o.zipfS} over ${fmt.int(o.poolSize)} distinct vectors (seed ${o.seed})`],
    ['max batch size', String(o.batchSize)],
    ['batch timeout', `${o.batchTimeoutMs} ms`],
    ['cache', o.useCache ? `on, ${fmt.int(o.cacheSize)} entries (LRU)` : 'off (--no-cache)'],
    ['per-request timeout', `${fmt.int(o.requestTimeoutMs)} ms`],
    ['machine', `${cpu.length} x ${cpu[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ${platform()} ${release()}`],
    ['Node.js', process.version],
    ['command', `pnpm demo ${process.argv.slice(2).join(' ')}`.trim()],
  ];
}

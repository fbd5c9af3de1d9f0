/**
 * docs/grafana/inferq.json, the Grafana dashboard over docs/metrics.md:
 * - every PromQL expression of its panels parses: each becomes a recording
 *   rule of a generated rules file that `promtool check rules` parses
 *   offline (Grafana's `$model` and `$__rate_interval` replaced by values
 *   first; skipped, saying why, without promtool);
 * - every metric an expression (or the `model` variable) names is served by
 *   an endpoint: a worker's `--metrics-port` or `inferq metrics`, scraped
 *   here after some traffic; a rename that forgets the dashboard fails.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InferenceClient } from '@inferq/client';
import {
  CLIENT_CLI,
  HOW_TO_GET_PROMTOOL,
  REPO_ROOT,
  findPromtool,
  freePort,
  parsePrometheusText,
  promtoolCheckExpressions,
  spawnNode,
  startTestRedis,
  startWorkerProcess,
  type SpawnedProcess,
  type TestRedis,
} from '@inferq/testkit';

const promtool = findPromtool();
if (!promtool) console.warn(`grafana-dashboard.test.ts: the PromQL parse check is skipped, ${HOW_TO_GET_PROMTOOL}`);

interface Panel {
  title?: string;
  targets?: Array<{ expr?: string }>;
  panels?: Panel[];
}
const dashboard = JSON.parse(readFileSync(`${REPO_ROOT}docs/grafana/inferq.json`, 'utf8')) as {
  panels: Panel[];
  templating: { list: Array<{ name: string; query?: unknown }> };
};
const panels = (list: Panel[]): Panel[] => list.flatMap((p) => [p, ...panels(p.panels ?? [])]);
const exprs = panels(dashboard.panels).flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title ?? '?', expr: t.expr ?? '' })));

/** Grafana's variables, replaced by values Prometheus accepts (the variables this dashboard uses; another one fails the parse). */
const withValues = (expr: string) => expr.replaceAll('$__rate_interval', '1m').replaceAll('$model', '.*');

const FUNCTIONS_AND_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/**
 * The metric names an expression selects: identifiers left once strings,
 * label matchers `{...}`, ranges `[...]` and grouping lists `by (...)` are
 * taken out, and function calls `f(` are not counted.
 */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const rest = bare.slice((m.index ?? 0) + m[0].length);
    if (/^\s*\(/.test(rest) || FUNCTIONS_AND_KEYWORDS.has(m[0].toLowerCase())) continue;
    if (/^\d/.test(bare.slice((m.index ?? 1) - 1))) continue; // an exponent such as 1e3
    names.add(m[0]);
  }
  return [...names];
}

let redis: TestRedis;
const processes: SpawnedProcess[] = [];
let client: InferenceClient<{ x: number; fail?: boolean }, { y: number }> | undefined;

beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(async () => {
  await client?.close();
  for (const p of processes) await p.stop(5000);
  await redis.cleanup();
});

describe('docs/grafana/inferq.json', () => {
  it('has panels with expressions, and the name extraction reads them as meant', () => {
    expect(exprs.length).toBeGreaterThan(10);
    expect(metricNames('histogram_quantile(0.95, sum by (worker, le) (rate(inferq_worker_model_duration_seconds_bucket{model=~"$model"}[$__rate_interval])))')).toEqual([
      'inferq_worker_model_duration_seconds_bucket',
    ]);
    expect(metricNames('sum by (model) (rate(a_total{x="by (y)"}[1m])) / sum(rate(b_total[1m])) > 1e3')).toEqual(['a_total', 'b_total']);
  });

  const title = 'every expression parses (promtool check rules)';
  (promtool ? it : it.skip)(promtool ? title : `${title} [skipped: ${HOW_TO_GET_PROMTOOL}]`, () => {
    const r = promtoolCheckExpressions(promtool as string, exprs.map((e) => withValues(e.expr)));
    expect(r.output).toMatch(/SUCCESS: \d+ rules found/);
    expect(r.ok, r.output).toBe(true);
    // And the check is a real one: a broken expression fails it.
    expect(promtoolCheckExpressions(promtool as string, ['sum(rate(inferq_requests_total[1m])']).ok).toBe(false);
  });

  it('names only metrics the endpoints serve', async () => {
    const model = 'grafana';
    const [workerPort, sharedPort] = [await freePort(), await freePort()];
    const worker = await startWorkerProcess({
      redisUrl: redis.url,
      model,
      module: 'packages/integration/test/fixtures/square-model.mjs',
      prefix: redis.prefix,
      args: ['--metrics-port', String(workerPort)],
    });
    processes.push(worker);
    const cli = spawnNode(CLIENT_CLI, ['metrics', '--model', model, '--port', String(sharedPort), '--redis', redis.url, '--prefix', redis.prefix]);
    processes.push(cli);
    await cli.waitForLine(/^METRICS /, 30_000);
    // Traffic, so that labelled series (errors by code) exist.
    client = new InferenceClient({ redis: redis.url, model, prefix: redis.prefix });
    await client.inferBatch([{ x: 1 }, { x: 2 }]);
    await client.infer({ x: 3, fail: true }).catch(() => undefined);

    const served = new Set<string>();
    for (const port of [workerPort, sharedPort]) {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) });
      const text = parsePrometheusText(await res.text());
      for (const s of text.samples) served.add(s.name);
      for (const [name, type] of text.types) {
        served.add(name);
        if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) served.add(name + suffix);
      }
    }
    const missing = exprs.flatMap(({ panel, expr }) => metricNames(expr).filter((n) => !served.has(n)).map((n) => `${panel}: ${n}`));
    expect(missing).toEqual([]);
    // The model variable's query names a metric too: label_values(<metric>, model).
    const variable = JSON.stringify(dashboard.templating.list.find((v) => v.name === 'model')?.query ?? '');
    const metric = /label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(variable)?.[1];
    expect(metric && served.has(metric), String(metric)).toBe(true);
  });
});

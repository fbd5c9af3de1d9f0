/**
 * Prometheus' own checker, `promtool` (Debian's `prometheus` package), for
 * tests: `promtool check metrics` lints an exposition (names, suffixes, help,
 * types), and `promtool check rules` parses PromQL offline, so a dashboard's
 * expressions can be checked without a Prometheus server. `pnpm test`
 * (scripts/run-tests.mjs) installs the package when promtool is missing and
 * it runs as root with apt-get; tests that need it skip, saying why, when
 * it is not found.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const HOW_TO_GET_PROMTOOL = 'no promtool binary found (Debian/Ubuntu: apt-get install -y prometheus; or set PROMTOOL_BIN)';

/** The promtool to run (`PROMTOOL_BIN`, else `promtool` on PATH) when it answers `--version`, else undefined. */
export function findPromtool(): string | undefined {
  for (const c of [process.env.PROMTOOL_BIN, 'promtool']) {
    if (!c) continue;
    if (spawnSync(c, ['--version'], { stdio: 'ignore', timeout: 10_000 }).status === 0) return c;
  }
  return undefined;
}

export interface PromtoolResult {
  ok: boolean;
  /** stdout and stderr together: promtool prints its findings on either. */
  output: string;
}

/** `promtool check metrics` on an exposition text (read from stdin). Lint findings make `ok` false. */
export function promtoolCheckMetrics(promtool: string, exposition: string): PromtoolResult {
  const r = spawnSync(promtool, ['check', 'metrics'], { input: exposition, encoding: 'utf8', timeout: 30_000 });
  return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

/**
 * Parses PromQL expressions offline: each becomes a recording rule of one
 * generated rules file, which `promtool check rules` parses (and rejects
 * with the expression's position when it does not).
 */
export function promtoolCheckExpressions(promtool: string, exprs: ReadonlyArray<string>): PromtoolResult {
  const dir = mkdtempSync(join(tmpdir(), 'inferq-promql-'));
  try {
    // JSON is YAML: no quoting rules of our own to get wrong.
    const rules = { groups: [{ name: 'inferq_expressions', rules: exprs.map((expr, i) => ({ record: `inferq:expr_${i}`, expr })) }] };
    const file = join(dir, 'rules.yml');
    writeFileSync(file, JSON.stringify(rules, null, 2));
    const r = spawnSync(promtool, ['check', 'rules', file], { encoding: 'utf8', timeout: 30_000 });
    return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

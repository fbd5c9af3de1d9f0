/**
 * A small parser of the Prometheus text exposition format (0.0.4), strict
 * enough for tests to catch a malformed line: `# HELP` / `# TYPE` comments,
 * and samples `name{label="value",...} value [timestamp]` with escaped label
 * values. Not a full implementation (no exemplars, no OpenMetrics).
 */

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromText {
  samples: PromSample[];
  /** `# TYPE` by metric family name. */
  types: Map<string, string>;
  /** `# HELP` by metric family name. */
  help: Map<string, string>;
  /** The one sample of `name` whose labels include `labels`; undefined when none (throws when several). */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** Sum over the samples of `name` whose labels include `labels` (0 when none). */
  sum(name: string, labels?: Record<string, string>): number;
  /** Samples of `name` whose labels include `labels`. */
  find(name: string, labels?: Record<string, string>): PromSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

function parseValue(raw: string, line: string): number {
  if (raw === '+Inf') return Infinity;
  if (raw === '-Inf') return -Infinity;
  if (raw === 'NaN') return NaN;
  const n = Number(raw);
  if (raw === '' || !Number.isFinite(n)) throw new Error(`bad sample value '${raw}' in line: ${line}`);
  return n;
}

function parseSample(line: string): PromSample {
  const name = NAME.exec(line)?.[0];
  if (!name) throw new Error(`bad metric name in line: ${line}`);
  let rest = line.slice(name.length);
  const labels: Record<string, string> = {};
  if (rest.startsWith('{')) {
    rest = rest.slice(1);
    for (;;) {
      rest = rest.trimStart();
      if (rest.startsWith('}')) {
        rest = rest.slice(1);
        break;
      }
      const label = LABEL_NAME.exec(rest)?.[0];
      if (!label || rest[label.length] !== '=' || rest[label.length + 1] !== '"') throw new Error(`bad label in line: ${line}`);
      rest = rest.slice(label.length + 2);
      let value = '';
      let i = 0;
      for (; i < rest.length && rest[i] !== '"'; i++) {
        if (rest[i] === '\\') {
          const next = rest[++i];
          value += next === 'n' ? '\n' : (next ?? '');
        } else value += rest[i];
      }
      if (i >= rest.length) throw new Error(`unterminated label value in line: ${line}`);
      if (label in labels) throw new Error(`label '${label}' twice in line: ${line}`);
      labels[label] = value;
      rest = rest.slice(i + 1).trimStart();
      if (rest.startsWith(',')) rest = rest.slice(1);
      else if (!rest.startsWith('}')) throw new Error(`expected ',' or '}' in line: ${line}`);
    }
  }
  if (!/^[ \t]/.test(rest)) throw new Error(`no value in line: ${line}`);
  const parts = rest.trim().split(/[ \t]+/);
  if (parts.length > 2) throw new Error(`trailing text in line: ${line}`);
  return { name, labels, value: parseValue(parts[0] ?? '', line) };
}

const matches = (s: PromSample, name: string, labels: Record<string, string>) =>
  s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v);

export function parsePrometheusText(text: string): PromText {
  const samples: PromSample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) ?(.*)$/.exec(line);
      if (m) (m[1] === 'TYPE' ? types : help).set(m[2]!, m[3] ?? '');
      continue;
    }
    samples.push(parseSample(line));
  }
  const find = (name: string, labels: Record<string, string> = {}) => samples.filter((s) => matches(s, name, labels));
  return {
    samples,
    types,
    help,
    find,
    value(name, labels = {}) {
      const found = find(name, labels);
      if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
      return found[0]?.value;
    },
    sum: (name, labels = {}) => find(name, labels).reduce((a, s) => a + s.value, 0),
  };
}

/**
 * Minimal SVG charts for the HTML report: stacked bars (histograms,
 * throughput over time) and lines (latency over time). Hand-written so
 * the report is one self-contained file that opens anywhere, offline,
 * with no chart library, CDN or script. Hovering a bar shows its numbers
 * (an SVG <title>).
 */

export interface BarSeries {
  name: string;
  color: string;
  values: readonly number[];
}

export interface BarChartSpec {
  title: string;
  /** Bars, left to right; each stacks one value of every series. */
  bars: number;
  series: readonly BarSeries[];
  /** X labels at bar positions (0 = left edge of bar 0, `bars` = right edge of the last). */
  xTicks: ReadonlyArray<{ at: number; label: string }>;
  xLabel: string;
  yLabel: string;
  /** Hover text per bar (the series values are appended). */
  barLabel?: (index: number) => string;
  width?: number;
  height?: number;
  /** Gap between bars, fraction of a bar slot (0 for a histogram of a continuous value). */
  gap?: number;
}

export interface LineSeries {
  name: string;
  color: string;
  values: ReadonlyArray<number | null>;
  dashed?: boolean;
}

export interface LineChartSpec {
  title: string;
  x: readonly number[];
  series: readonly LineSeries[];
  xLabel: string;
  yLabel: string;
  /** Log scale on y (latencies spanning decades). */
  logY?: boolean;
  width?: number;
  height?: number;
}

const M = { top: 34, right: 16, bottom: 46, left: 62 };

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

/** A "nice" step (1, 2 or 5 times a power of ten) giving about `count` ticks up to `max`. */
export function niceStep(max: number, count = 5): number {
  if (!(max > 0)) return 1;
  const raw = max / count;
  const pow = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / pow;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * pow;
}

export function formatTick(v: number): string {
  if (v === 0) return '0';
  if (Math.abs(v) >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (Math.abs(v) >= 1e4) return `${+(v / 1e3).toFixed(1)}k`;
  if (Math.abs(v) >= 1) return String(+v.toFixed(2));
  return String(+v.toPrecision(2));
}

function frame(
  width: number,
  height: number,
  title: string,
  inner: string,
  legend: ReadonlyArray<{ name: string; color: string; dashed?: boolean }>,
  lines = false,
): string {
  let x = M.left;
  const items = legend
    .map((l) => {
      const mark = lines
        ? `<line x1="${x}" y1="${M.top - 14}" x2="${x + 14}" y2="${M.top - 14}" stroke="${l.color}" stroke-width="2"${l.dashed ? ' stroke-dasharray="4 2"' : ''}/>`
        : `<rect x="${x}" y="${M.top - 20}" width="12" height="12" fill="${l.color}" rx="2"/>`;
      const text = `<text x="${x + 18}" y="${M.top - 10}" class="lg">${esc(l.name)}</text>`;
      // No text measuring in a static SVG: 7.5 px per character is a safe width for 12 px sans-serif.
      x += 32 + l.name.length * 7.5;
      return mark + text;
    })
    .join('');
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(title)}">` +
    `<style>.lg{font:12px system-ui,sans-serif;fill:#333}.ax{font:11px system-ui,sans-serif;fill:#555}.al{font:12px system-ui,sans-serif;fill:#333}</style>` +
    items +
    inner +
    `</svg>`
  );
}

function axes(width: number, height: number, xLabel: string, yLabel: string): string {
  const h = height - M.top - M.bottom;
  return (
    `<line x1="${M.left}" y1="${M.top + h}" x2="${width - M.right}" y2="${M.top + h}" stroke="#888"/>` +
    `<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + h}" stroke="#888"/>` +
    `<text x="${M.left + (width - M.left - M.right) / 2}" y="${height - 8}" text-anchor="middle" class="al">${esc(xLabel)}</text>` +
    `<text transform="translate(14 ${M.top + h / 2}) rotate(-90)" text-anchor="middle" class="al">${esc(yLabel)}</text>`
  );
}

function yGrid(width: number, y: (v: number) => number, ticks: number[]): string {
  return ticks
    .map(
      (v) =>
        `<line x1="${M.left}" y1="${y(v).toFixed(1)}" x2="${width - M.right}" y2="${y(v).toFixed(1)}" stroke="#eee"/>` +
        `<text x="${M.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" class="ax">${formatTick(v)}</text>`,
    )
    .join('');
}

export function stackedBarChart(spec: BarChartSpec): string {
  const width = spec.width ?? 900;
  const height = spec.height ?? 300;
  const w = width - M.left - M.right;
  const h = height - M.top - M.bottom;
  const totals = Array.from({ length: spec.bars }, (_, i) => spec.series.reduce((s, se) => s + (se.values[i] ?? 0), 0));
  const max = Math.max(1, ...totals);
  const step = niceStep(max);
  const top = Math.ceil(max / step) * step;
  const y = (v: number) => M.top + h - (v / top) * h;
  const ticks: number[] = [];
  for (let v = 0; v <= top + step / 2; v += step) ticks.push(v);
  const slot = w / Math.max(1, spec.bars);
  const gap = (spec.gap ?? 0.15) * slot;
  const bars: string[] = [];
  for (let i = 0; i < spec.bars; i++) {
    if ((totals[i] ?? 0) === 0) continue;
    let acc = 0;
    const x = M.left + i * slot + gap / 2;
    const tip = `${spec.barLabel ? spec.barLabel(i) + '\n' : ''}${spec.series.map((s) => `${s.name}: ${formatTick(s.values[i] ?? 0)}`).join('\n')}`;
    const rects = spec.series
      .map((s) => {
        const v = s.values[i] ?? 0;
        if (v <= 0) return '';
        const y0 = y(acc);
        acc += v;
        const y1 = y(acc);
        return `<rect x="${x.toFixed(2)}" y="${y1.toFixed(2)}" width="${Math.max(0.5, slot - gap).toFixed(2)}" height="${Math.max(0.5, y0 - y1).toFixed(2)}" fill="${s.color}"/>`;
      })
      .join('');
    bars.push(`<g><title>${esc(tip)}</title>${rects}</g>`);
  }
  const xt = spec.xTicks
    .map((t) => {
      const x = M.left + t.at * slot;
      return `<line x1="${x.toFixed(1)}" y1="${M.top + h}" x2="${x.toFixed(1)}" y2="${M.top + h + 4}" stroke="#888"/><text x="${x.toFixed(1)}" y="${M.top + h + 16}" text-anchor="middle" class="ax">${esc(t.label)}</text>`;
    })
    .join('');
  return frame(width, height, spec.title, yGrid(width, y, ticks) + bars.join('') + axes(width, height, spec.xLabel, spec.yLabel) + xt, spec.series);
}

export function lineChart(spec: LineChartSpec): string {
  const width = spec.width ?? 900;
  const height = spec.height ?? 260;
  const w = width - M.left - M.right;
  const h = height - M.top - M.bottom;
  const all = spec.series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  const xMax = Math.max(1e-9, ...spec.x);
  const x = (v: number) => M.left + (v / xMax) * w;
  let y: (v: number) => number;
  let ticks: number[];
  if (spec.logY) {
    const lo = Math.pow(10, Math.floor(Math.log10(Math.max(1e-3, Math.min(...all, 1)))));
    const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...all, lo * 10))));
    y = (v: number) => M.top + h - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * h;
    ticks = [];
    for (let v = lo; v <= hi * 1.0001; v *= 10) ticks.push(v);
  } else {
    const max = Math.max(1e-9, ...all);
    const step = niceStep(max);
    const top = Math.ceil(max / step) * step;
    y = (v: number) => M.top + h - (v / top) * h;
    ticks = [];
    for (let v = 0; v <= top + step / 2; v += step) ticks.push(v);
  }
  const lines = spec.series
    .map((s) => {
      // A gap (null) breaks the line instead of drawing through a bin with no data.
      let d = '';
      let pen = false;
      s.values.forEach((v, i) => {
        if (v === null || !Number.isFinite(v)) {
          pen = false;
          return;
        }
        d += `${pen ? 'L' : 'M'}${x(spec.x[i] ?? 0).toFixed(1)} ${y(v).toFixed(1)}`;
        pen = true;
      });
      return `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`;
    })
    .join('');
  const xStep = niceStep(xMax, 8);
  let xt = '';
  for (let v = 0; v <= xMax + 1e-9; v += xStep) {
    xt += `<line x1="${x(v).toFixed(1)}" y1="${M.top + h}" x2="${x(v).toFixed(1)}" y2="${M.top + h + 4}" stroke="#888"/><text x="${x(v).toFixed(1)}" y="${M.top + h + 16}" text-anchor="middle" class="ax">${formatTick(v)}</text>`;
  }
  return frame(width, height, spec.title, yGrid(width, y, ticks) + lines + axes(width, height, spec.xLabel, spec.yLabel) + xt, spec.series, true);
}

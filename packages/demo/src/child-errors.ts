/**
 * Counts error-level log lines in a child's stderr. The children log with
 * pino (JSON lines, level 50 = error, 60 = fatal); a healthy run has none,
 * so the summary surfaces any it finds instead of letting them scroll by
 * unseen in a pipe nobody reads.
 */
export function errorLogLines(stderr: string): { lines: number; sample: string } {
  let lines = 0;
  let sample = '';
  for (const line of stderr.split('\n')) {
    const t = line.trim();
    if (!t) continue;
    let isError = false;
    let text = t;
    if (t.startsWith('{')) {
      try {
        const j = JSON.parse(t) as { level?: number; msg?: string; err?: { message?: string } };
        isError = (j.level ?? 0) >= 50;
        text = [j.msg, j.err?.message].filter(Boolean).join(': ');
      } catch {
        isError = false;
      }
    } else {
      // Not pino: an uncaught exception or a runtime warning printed as text.
      isError = /error|exception|fatal/i.test(t) && !/ExperimentalWarning/.test(t);
    }
    if (isError) {
      lines++;
      if (!sample) sample = text.slice(0, 240);
    }
  }
  return { lines, sample };
}

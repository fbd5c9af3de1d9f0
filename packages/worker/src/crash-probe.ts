/**
 * The proof behind a conviction (crash-isolation.ts): a FRESH process that
 * loads the model module, runs one input as its first and only model call,
 * and reports. Latent state left in a worker by other inputs (input A
 * corrupts the model, the next call dies) cannot fake it: nothing but this
 * input ever entered the probe's model.
 *
 * - `died`: the process ended after loading the model and before reporting
 *   (the input killed a fresh process: one proven kill);
 * - `returned` / `failed`: the model answered (an output, or a throw / an
 *   Error in its slot): the input did not kill a fresh process, and this
 *   answer, computed in a clean process, is what its callers get;
 * - `timeout`: no answer within `timeoutMs` (the probe is killed): the input
 *   hangs alone in a fresh process;
 * - `unavailable`: the probe could not load the model (or spawn): no proof
 *   either way; crash isolation runs the input alone in the worker instead.
 *
 * The probe runs `crash-probe-main` with the worker's own Node flags (so it
 * runs from sources under tsx as the worker does), the input on stdin.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Logger } from '@inferq/core';

export type ProbeResult =
  | { kind: 'died'; code: number | null; signal: NodeJS.Signals | null }
  | { kind: 'returned'; output: unknown }
  | { kind: 'failed'; code: string; message: string }
  | { kind: 'timeout' }
  | { kind: 'unavailable'; reason: string };

export interface CrashProbeOptions {
  /** The model module as `inferq-worker --module` takes it (a path or `builtin:<name>`). */
  module: string;
  quantization: string;
  /** Longest wait for the answer once the model is loaded (modelTimeoutMs); 0 = 60 s. */
  timeoutMs: number;
  /** Longest wait for the model to load. */
  loadTimeoutMs?: number;
  logger: Logger;
}

const ENTRY = fileURLToPath(new URL(`./crash-probe-main.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url));

/** Runs `inputJson` (canonical JSON text) alone in a fresh process. Never rejects. */
export function probeInput(o: CrashProbeOptions, inputJson: string): Promise<ProbeResult> {
  return new Promise<ProbeResult>((resolve) => {
    let out = '';
    let loaded = false;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const done = (r: ProbeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(process.execPath, [...process.execArgv, ENTRY], {
        env: { ...process.env, INFERQ_PROBE_MODULE: o.module, INFERQ_PROBE_QUANTIZATION: o.quantization },
        stdio: ['pipe', 'pipe', 'inherit'],
      });
    } catch (err) {
      done({ kind: 'unavailable', reason: `spawn failed: ${(err as Error).message}` });
      return;
    }
    const arm = (ms: number, what: string) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        // Ended by its pid; a hung probe is the input's doing only once the model was loaded.
        child.kill('SIGKILL');
        done(loaded ? { kind: 'timeout' } : { kind: 'unavailable', reason: `the model did not load within ${what}` });
      }, ms);
    };
    arm(o.loadTimeoutMs ?? 60_000, `${o.loadTimeoutMs ?? 60_000} ms`);
    child.on('error', (err) => done({ kind: 'unavailable', reason: err.message }));
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (d: string) => {
      out += d;
      for (;;) {
        const nl = out.indexOf('\n');
        if (nl < 0) break;
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        if (line === 'LOADED') {
          loaded = true;
          arm(o.timeoutMs > 0 ? o.timeoutMs : 60_000, 'modelTimeoutMs');
        } else if (line.startsWith('RESULT ')) {
          try {
            const r = JSON.parse(line.slice('RESULT '.length)) as { ok: boolean; output?: unknown; code?: string; message?: string };
            done(r.ok ? { kind: 'returned', output: r.output } : { kind: 'failed', code: r.code ?? 'INFERQ_MODEL_FAILED', message: r.message ?? 'the model failed' });
          } catch (err) {
            done({ kind: 'unavailable', reason: `unreadable probe answer: ${(err as Error).message}` });
          }
        } else if (line.startsWith('UNAVAILABLE ')) {
          done({ kind: 'unavailable', reason: line.slice('UNAVAILABLE '.length) });
        }
      }
    });
    child.on('exit', (code, signal) => {
      if (settled) return;
      if (loaded) done({ kind: 'died', code, signal });
      else done({ kind: 'unavailable', reason: `the probe ended before its model loaded (code ${code}, signal ${signal})` });
    });
    child.stdin?.on('error', () => undefined); // a probe that died at once: its exit says so
    child.stdin?.end(inputJson);
  });
}

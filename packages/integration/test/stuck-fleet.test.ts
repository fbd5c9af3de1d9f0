/**
 * A fleet whose model slots all hang (docs/failure-modes.md, "A stuck
 * worker leaves"): two `inferq-worker` processes with one model slot each
 * (`--num-workers 1`), restarted by a small supervisor when they exit, and a
 * model that never returns for an input { hang: true }. Two hanging inputs
 * wedge both workers; each leaves once every slot has been stuck for
 * stuckExitFactor x modelTimeoutMs (exit code 3, one log line saying why),
 * having handed its jobs back, and the supervisor's fresh processes answer
 * 100 fresh requests. Before: no worker exited, and 0 of 100 fresh requests
 * were answered in 30 s.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ErrorCode, type InferqError } from '@inferq/core';
import { InferenceClient } from '@inferq/client';
import { startWorkerProcess, type SpawnedProcess } from '@inferq/testkit';
import { useTestRedis } from '@inferq/testkit/harness';

const HANG_MODEL = fileURLToPath(new URL('./fixtures/hang-model.mjs', import.meta.url));
type In = { x: number; hang?: boolean };
type Out = { y: number };

const h = useTestRedis({ ownServer: true });

const MODEL_TIMEOUT_MS = 1000;
const STUCK_EXIT_FACTOR = 2;
/** How long every slot stays stuck before a worker leaves. */
const STUCK_BOUND_MS = MODEL_TIMEOUT_MS * STUCK_EXIT_FACTOR;

describe('a fleet whose model slots all hang', () => {
  it('each stuck worker hands its jobs back and exits 3; the supervised fleet answers fresh requests within ~2x the stuck bound', async () => {
    const prefix = h.redis.newPrefix();
    const model = 'wedged';
    const dir = mkdtempSync(join(tmpdir(), 'inferq-stuck-'));
    const all: SpawnedProcess[] = [];
    const exits: Array<{ pid: number; code: number | null; at: number }> = [];
    let stopping = false;
    let restarts = 0;
    const launch = async (): Promise<void> => {
      const p = await startWorkerProcess({
        redisUrl: h.redis.url,
        model,
        module: HANG_MODEL,
        prefix,
        args: ['--num-workers', '1', '--batch-timeout-ms', '5', '--model-timeout-ms', String(MODEL_TIMEOUT_MS), '--stop-timeout-ms', '500', '--lock-duration-ms', '5000', '--stalled-interval-ms', '5000'],
        // By env: a worker that does not know the option still starts (the test then fails on what it shows).
        env: { INFERQ_STUCK_EXIT_FACTOR: String(STUCK_EXIT_FACTOR), MODEL_LOG: join(dir, 'model.log'), INFERQ_LOG_LEVEL: 'warn' },
      });
      all.push(p);
      void p.exited.then(({ code }) => {
        if (stopping) return;
        exits.push({ pid: p.pid, code, at: Date.now() });
        if (restarts++ < 6) void launch().catch(() => undefined);
      });
    };
    h.defer(async () => {
      stopping = true;
      await Promise.all(all.map((p) => p.stop(2000)));
    });
    await Promise.all([launch(), launch()]);
    const c = new InferenceClient<In, Out>({ redis: h.redis.url, model, prefix });
    h.defer(() => c.close({ timeoutMs: 100 }));

    // Hanging inputs until both workers' only slots are taken (the model log names the process of each
    // call): a worker fetches more jobs than its slot takes, so which one runs the next is not fixed.
    const log = join(dir, 'model.log');
    const hangPids = () =>
      new Set(
        (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : [])
          .map((l) => JSON.parse(l) as { pid: number; input: In })
          .filter((l) => l.input.hang)
          .map((l) => l.pid),
      );
    const hung: Array<Promise<string>> = [];
    for (let i = 0; i < 8 && hangPids().size < 2; i++) {
      hung.push(c.infer({ x: i + 1, hang: true }, { useCache: false, timeoutMs: 40_000 }).then(() => 'ok', (e: unknown) => (e as InferqError).code));
      for (let w = 0; w < 10 && hangPids().size < Math.min(2, hung.length); w++) await new Promise((r) => setTimeout(r, 50));
    }
    expect(hangPids().size).toBe(2);
    await new Promise((r) => setTimeout(r, MODEL_TIMEOUT_MS + 200)); // both slots stuck past modelTimeoutMs now

    const t0 = Date.now();
    const fresh = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => c.infer({ x: 10 + i }, { useCache: false, timeoutMs: 30_000 }).then((r) => ({ ...r, at: Date.now() }))));
    const answered = fresh.filter((o) => o.status === 'fulfilled');
    const lastMs = Math.max(...answered.map((o) => (o as PromiseFulfilledResult<{ at: number }>).value.at)) - t0;
    const hungCodes = await Promise.all(hung);
    const summary = {
      answered: answered.length,
      lastAnsweredMs: lastMs,
      stuckBoundMs: STUCK_BOUND_MS,
      exits: exits.map((e) => ({ code: e.code, afterMs: e.at - t0 })),
      hangingSent: hung.length,
      hung: hungCodes,
    };
    console.log('stuck fleet:', JSON.stringify(summary));
    expect(answered.length).toBe(100);
    fresh.forEach((o, i) => expect(o.status === 'fulfilled' && o.value.output.y).toBe((10 + i) ** 2));
    // Fresh requests are answered within about twice the stuck bound (plus a process start).
    expect(lastMs).toBeLessThan(2 * STUCK_BOUND_MS + 6000);
    // Each stuck worker left on its own, with the documented exit code, saying why.
    expect(exits.length).toBeGreaterThanOrEqual(2);
    for (const e of exits) expect(e.code).toBe(3);
    const logs = all.flatMap((p) => p.stderr().split('\n')).filter((l) => l.startsWith('{'));
    expect(logs.some((l) => /every model slot stuck/.test(l) && /exit/.test(l))).toBe(true);
    // The hanging inputs: answered INFERQ_MODEL_TIMEOUT, never INFERQ_JOB_LOST.
    for (const h of hungCodes) expect(h).toBe(ErrorCode.MODEL_TIMEOUT);
  }, 90_000);
});

/**
 * The CLIs' streams, as a supervisor sees them: stdout holds only the
 * protocol lines (`METRICS <url>`, `READY <worker id>`; `inferq metrics`:
 * `METRICS <url>`), stderr only pino JSON records, one per line. The worker
 * runs a model that prints with console.log / console.warn
 * (fixtures/chatty-model.mjs), which used to land on stdout as plain lines.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InferenceClient } from '@inferq/client';
import { CLIENT_CLI, spawnNode, startTestRedis, startWorkerProcess, type TestRedis } from '@inferq/testkit';

const CHATTY = fileURLToPath(new URL('./fixtures/chatty-model.mjs', import.meta.url));

let redis: TestRedis;
beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(() => redis.cleanup());

/** Every non-empty stderr line as a JSON record; a line that is not one fails the test, quoted. */
function records(stderr: string): Array<Record<string, unknown>> {
  return stderr
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw new Error(`stderr line is not pino JSON: ${line}`);
      }
    });
}

describe('CLI streams', () => {
  it('inferq-worker: stdout holds only METRICS and READY, stderr only pino JSON, even when the model prints', async () => {
    const model = 'streams';
    // The test runner sets INFERQ_LOG_LEVEL=silent: this test is about the logs, so they are on.
    const worker = await startWorkerProcess({ redisUrl: redis.url, model, module: CHATTY, prefix: redis.prefix, args: ['--metrics-port', '0'], env: { INFERQ_LOG_LEVEL: 'info' } });
    const client = new InferenceClient<number, number>({ redis: redis.url, model, prefix: redis.prefix });
    try {
      expect(await client.inferBatch([1, 2, 3])).toHaveLength(3);
    } finally {
      await client.close();
    }
    const { code } = await worker.stop();
    expect(code, worker.stderr()).toBe(0);

    expect(worker.lines.map((l) => l.split(' ')[0])).toEqual(['METRICS', 'READY']);
    expect(worker.lines[1]).toBe(`READY ${worker.workerId}`);
    const logs = records(worker.stderr());
    expect(logs.every((r) => typeof r.level === 'number' && typeof r.msg === 'string' && typeof r.time === 'number')).toBe(true);
    const msgs = logs.map((r) => r.msg);
    expect(msgs).toContain('worker started');
    expect(msgs).toContain('stopping gracefully');
    // What the model printed is in the logs, at console's level, marked as console output.
    const fromConsole = logs.filter((r) => r.source === 'console');
    expect(fromConsole.find((r) => r.msg === 'chatty model loading')).toMatchObject({ level: 30 });
    expect(fromConsole.find((r) => String(r.msg).startsWith('chatty batch'))).toMatchObject({ level: 30 });
    expect(fromConsole.find((r) => r.msg === 'chatty warning: first batch')).toMatchObject({ level: 40 });
  });

  it('inferq metrics: stdout holds only its METRICS line', async () => {
    const p = spawnNode(CLIENT_CLI, ['metrics', '--model', 'streams', '--port', '0', '--redis', redis.url, '--prefix', redis.prefix], { INFERQ_LOG_LEVEL: 'info' });
    const line = await p.waitForLine(/^METRICS /);
    const res = await fetch(`${line.slice('METRICS '.length)}`);
    expect(res.status).toBe(200);
    const { code } = await p.stop();
    expect(code, p.stderr()).toBe(0);
    expect(p.lines).toEqual([line]);
    records(p.stderr());
  });
});

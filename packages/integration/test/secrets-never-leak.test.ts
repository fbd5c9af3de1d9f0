/**
 * A Redis password never reaches a log line, an error message or a CLI's
 * output, whatever goes wrong. A real redis-server with ACL users; for each
 * failure (wrong password, a disabled user given its RIGHT password, a raw
 * `@` or `/ ? #` in the URL's password, a scheme typo, an unreachable
 * host) the worker CLI, the `inferq` CLI and an application process using
 * the SDK run at INFERQ_LOG_LEVEL=debug, and their whole stdout and stderr
 * is searched for the password, whole, percent-encoded and in pieces.
 *
 * Before the fix: ioredis' AUTH error carries `command.args: [user,
 * password]` and pino wrote it (wrong password, disabled user); the URL
 * masker stopped at the first `@`; a scheme typo printed the whole URL.
 */
import { inspect } from 'node:util';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InferqError } from '@inferq/core';
import { InferenceWorker } from '@inferq/worker';
import { CLIENT_CLI, WORKER_CLI, freePort, spawnNode, startTestRedis, type SpawnedProcess, type TestRedis } from '@inferq/testkit';

const SDK_APP = fileURLToPath(new URL('./fixtures/secret-client.ts', import.meta.url));
const MODEL = 'secrets';

// Each password holds the characters URL parsers trip on, between pieces
// distinctive enough to search for one by one (a password printed in part is leaked).
const RIGHT = 'Tr0ub4@d0rXY:Kq7zP/Yy9Rw?Zq8Lm#Wv6Nb%Qs3cr3tZ';
const AT_ONLY = 'Onl7yAt@Sec4ret42x';
const WRONG = 'Wr0ngG@Guess#Pa55wd!';
const WRONG_AT = 'Bad9Guess@Raw7AtPass';
const OFF = 'Off7Line@S3cr3tXx#Disab';

let redis: TestRedis;
let port = 0;
let closedPort = 0;
beforeAll(async () => {
  redis = await startTestRedis({ ownServer: true });
  port = redis.server!.port;
  closedPort = await freePort();
  const admin = redis.connect();
  await admin.call('ACL', 'SETUSER', 'atuser', 'on', `>${RIGHT}`, '~*', '&*', '+@all');
  await admin.call('ACL', 'SETUSER', 'atonly', 'on', `>${AT_ONLY}`, '~*', '&*', '+@all');
  // Disabled: AUTH with its right password fails with the same WRONGPASS as a wrong one.
  await admin.call('ACL', 'SETUSER', 'offuser', 'off', `>${OFF}`, '~*', '&*', '+@all');
});
afterAll(() => redis.cleanup());

const enc = encodeURIComponent;

/** Every form in which a password could show: whole, percent-encoded, and each piece of 5+ characters. */
function forms(secret: string): string[] {
  return [secret, enc(secret), ...secret.split(/[^A-Za-z0-9]/).filter((p) => p.length >= 5)];
}

function expectNoSecret(output: string, secret: string, what: string): void {
  for (const form of forms(secret)) {
    const at = output.indexOf(form);
    expect(at, `${what} printed '${form}' of the password:\n…${output.slice(Math.max(0, at - 300), at + 100)}…`).toBe(-1);
  }
}

/** Waits for the process to end by itself (bounded), else stops it by pid; returns all it printed. */
async function outputOf(p: SpawnedProcess, boundMs: number): Promise<{ code: number | null; out: string }> {
  let timer: NodeJS.Timeout | undefined;
  const ended = await Promise.race([p.exited, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), boundMs)))]);
  clearTimeout(timer);
  const { code } = ended ?? (await p.stop(5000));
  return { code, out: `${p.lines.join('\n')}\n${p.stderr()}` };
}

interface Case {
  name: string;
  url: () => string;
  secret: string;
  /** The worker gets ready (and is stopped by the test) instead of failing. */
  connects?: boolean;
}

const cases: Case[] = [
  { name: 'wrong password', url: () => `redis://atuser:${enc(WRONG)}@127.0.0.1:${port}`, secret: WRONG },
  { name: 'disabled user with its right password', url: () => `redis://offuser:${enc(OFF)}@127.0.0.1:${port}`, secret: OFF },
  // ioredis takes the last `@` as the end of the password: this one connects, and its URL must still be masked whole.
  { name: "raw '@' in the password", url: () => `redis://atonly:${AT_ONLY}@127.0.0.1:${port}`, secret: AT_ONLY, connects: true },
  // ...and this one fails, so its URL shows in the error message: masked up to the LAST '@'.
  { name: "raw '@' in a wrong password", url: () => `redis://atonly:${WRONG_AT}@127.0.0.1:${port}`, secret: WRONG_AT },
  { name: "raw '@', '/', '?', '#' in the password", url: () => `redis://atuser:${RIGHT}@127.0.0.1:${port}`, secret: RIGHT },
  { name: 'scheme typo (Redis://)', url: () => `Redis://atuser:${enc(RIGHT)}@127.0.0.1:${port}`, secret: RIGHT },
  { name: 'unreachable host', url: () => `redis://atuser:${enc(RIGHT)}@127.0.0.1:${closedPort}`, secret: RIGHT },
];

const DEBUG = { INFERQ_LOG_LEVEL: 'debug' };

describe('a Redis password never leaks', () => {
  for (const c of cases) {
    it(`${c.name}: worker CLI, inferq CLI and an SDK application print no part of it`, async () => {
      const url = c.url();
      const prefix = redis.newPrefix();
      const worker = spawnNode(WORKER_CLI, ['--model', MODEL, '--module', 'builtin:noop', '--redis', url, '--prefix', prefix, '--connect-timeout-ms', '1500'], DEBUG);
      const cli = spawnNode(CLIENT_CLI, ['stats', '--model', MODEL, '--redis', url, '--prefix', prefix], DEBUG);
      const app = spawnNode(SDK_APP, [], { ...DEBUG, REDIS_URL: url, MODEL, PREFIX: prefix });
      if (c.connects) await worker.waitForLine(/^READY /, 60_000);
      const [w, s, a] = await Promise.all([outputOf(worker, c.connects ? 0 : 40_000), outputOf(cli, 40_000), outputOf(app, 40_000)]);
      expectNoSecret(w.out, c.secret, 'inferq-worker');
      expectNoSecret(s.out, c.secret, 'inferq stats');
      expectNoSecret(a.out, c.secret, 'the SDK application');
      if (!c.connects) {
        expect(w.code, w.out).toBe(1);
        expect(s.code, s.out).toBe(1);
      }
      // Each one said what went wrong, not nothing.
      expect(a.out).toMatch(/DONE/);
    }, 120_000);
  }

  it("a user's own pino logger, and the error start() rejects with, carry no password", async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const logger = pino({ level: 'debug' }, stream);
    const worker = new InferenceWorker({ redis: `redis://offuser:${enc(OFF)}@127.0.0.1:${port}`, model: MODEL, prefix: redis.newPrefix(), run: async (xs: unknown[]) => xs, logger, connectTimeoutMs: 1500 });
    const err = (await worker.start().then(() => undefined, (e: unknown) => e)) as InferqError;
    expect(err.code).toBe('INFERQ_REDIS_AUTH_FAILED');
    expect(lines.join('')).toMatch(/WRONGPASS/);
    expectNoSecret(lines.join(''), OFF, "the user's logger");
    expectNoSecret(inspect(err, { depth: 20 }), OFF, 'the rejected error, inspected');
    expectNoSecret(JSON.stringify(err), OFF, 'the rejected error, as JSON');
  }, 30_000);
});

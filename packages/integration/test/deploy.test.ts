/**
 * The deployment files, checked without a Docker engine (none runs here):
 *   - Dockerfile: multi-stage; the runtime stage installs the packed
 *     tarballs with production dependencies only, NODE_ENV=production set
 *     before that install, runs as a non-root user, and has a HEALTHCHECK on
 *     the worker's /healthz through node's fetch (the slim image has no curl);
 *   - docker-compose.yml: valid for `docker-compose config` (Debian's
 *     docker-compose, offline; skipped with a message when absent), Redis
 *     with AOF `appendfsync always` and the ACL file, not published beyond
 *     127.0.0.1, restart policies, and a stop grace period above the
 *     worker's longest stop;
 *   - deploy/redis/users.acl: loaded by a real redis-server, the default user
 *     is off, the health-check user can PING and nothing else, and a worker
 *     and a client run as user `inferq` with its placeholder password.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker, WORKER_DEFAULTS } from '@inferq/worker';
import { REPO_ROOT, findRedisServerBinary, freePort } from '@inferq/testkit';

const DOCKERFILE = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
const COMPOSE_FILE = join(REPO_ROOT, 'docker-compose.yml');
const COMPOSE = readFileSync(COMPOSE_FILE, 'utf8');
const ACL_FILE = join(REPO_ROOT, 'deploy', 'redis', 'users.acl');
/** The placeholder password of user `inferq` in users.acl and docker-compose.yml. */
const PLACEHOLDER = 'CHANGE-ME-inferq-password';
/**
 * What the worker's stop takes at most past `stopTimeoutMs`: the bounded
 * steps of InferenceWorker's doStop (forced close 1 s, batcher 1 s, stats
 * flush 1 s, model close 5 s, two connections 1 s each, dropping BullMQ's
 * connections ~0.2 s), rounded up.
 */
const STOP_STEPS_MS = 11_000;

interface Instruction {
  op: string;
  args: string;
}

/** Dockerfile instructions per stage (continuation lines joined, comments dropped). */
function dockerStages(text: string): Instruction[][] {
  const joined = text
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ');
  const stages: Instruction[][] = [];
  for (const line of joined.split('\n')) {
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const ins = { op: m[1]!.toUpperCase(), args: m[2]!.trim() };
    if (ins.op === 'FROM') stages.push([]);
    stages.at(-1)?.push(ins);
  }
  return stages;
}

/** The lines of one top-level service of docker-compose.yml (up to the next service or top-level key). */
function composeService(name: string): string {
  const lines = COMPOSE.split('\n');
  const start = lines.findIndex((l) => l === `  ${name}:`);
  expect(start, `service ${name}`).toBeGreaterThan(0);
  const end = lines.findIndex((l, i) => i > start && /^ {0,2}\S/.test(l));
  return lines
    .slice(start, end < 0 ? undefined : end)
    .filter((l) => !/^\s*#/.test(l))
    .join('\n');
}

describe('Dockerfile', () => {
  const stages = dockerStages(DOCKERFILE);
  const runtime = stages.at(-1)!;
  const index = (pred: (i: Instruction) => boolean) => runtime.findIndex(pred);

  it('is multi-stage: a build stage packs the packages, the runtime stage copies only the tarballs', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const build = stages[0]!;
    const buildName = /\bAS\s+(\S+)/i.exec(build[0]!.args)?.[1];
    expect(buildName).toBeDefined();
    const buildRuns = build.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
    expect(buildRuns).toContain('install --frozen-lockfile');
    expect(buildRuns).toMatch(/pnpm@[\d.]+ build/);
    expect(buildRuns).toMatch(/pnpm@[\d.]+ pack/);
    // A frozen install needs the pnpmfile whose checksum the lockfile holds.
    const buildCopies = build.filter((i) => i.op === 'COPY').map((i) => i.args).join('\n');
    for (const f of ['package.json', 'pnpm-lock.yaml', 'pnpm-workspace.yaml', '.pnpmfile.cjs']) expect(buildCopies).toContain(f);
    const copies = runtime.filter((i) => i.op === 'COPY');
    expect(copies.length).toBeGreaterThan(0);
    for (const c of copies) expect(c.args, 'the runtime stage copies from the build stage only').toContain(`--from=${buildName}`);
  });

  it('installs the tarballs with production dependencies only, NODE_ENV=production set before', () => {
    const install = index((i) => i.op === 'RUN' && /npm (install|ci)\b/.test(i.args));
    expect(install).toBeGreaterThan(0);
    const args = runtime[install]!.args;
    expect(args).toContain('--omit=dev');
    for (const p of ['core', 'worker']) expect(args).toMatch(new RegExp(`inferq-${p}-[^ ]*\\.tgz`));
    const env = index((i) => i.op === 'ENV' && /\bNODE_ENV[= ]production\b/.test(i.args));
    expect(env, 'ENV NODE_ENV=production in the runtime stage').toBeGreaterThanOrEqual(0);
    expect(env).toBeLessThan(install);
  });

  it('runs as a non-root user, after the install', () => {
    const users = runtime.filter((i) => i.op === 'USER');
    expect(users.length).toBeGreaterThan(0);
    const user = users.at(-1)!.args.split(':')[0]!;
    expect(['root', '0']).not.toContain(user);
    expect(index((i) => i === users.at(-1))).toBeGreaterThan(index((i) => i.op === 'RUN' && /npm install/.test(i.args)));
  });

  it("has a HEALTHCHECK on the worker's /healthz with node's fetch, on the port the worker serves", () => {
    const checks = runtime.filter((i) => i.op === 'HEALTHCHECK');
    expect(checks).toHaveLength(1);
    const check = checks[0]!.args;
    expect(check).toMatch(/--timeout=\d+s/);
    expect(check).toContain('/healthz');
    expect(check).toContain('INFERQ_METRICS_PORT');
    const usesCurl = /\bcurl\b/.test(check);
    expect(usesCurl ? /apt-get install[^\n]*\bcurl\b/.test(DOCKERFILE) : /\bnode\b[^\n]*\bfetch\(/.test(check), 'node fetch, or curl only when installed').toBe(true);
    expect(runtime.some((i) => i.op === 'ENV' && /INFERQ_METRICS_PORT[= ]\d+/.test(i.args)), 'the worker serves --metrics-port').toBe(true);
    const entry = runtime.find((i) => i.op === 'ENTRYPOINT')?.args ?? '';
    expect(entry).toContain('inferq-worker');
  });
});

describe('docker-compose.yml', () => {
  const composeBin = spawnSync('docker-compose', ['version'], { stdio: 'ignore', timeout: 20_000 }).status === 0;

  it('is valid for docker-compose config', (ctx) => {
    ctx.skip(!composeBin, 'no docker-compose to validate it (Debian/Ubuntu: apt-get install -y docker-compose; `pnpm test` installs it when run as root)');
    const r = spawnSync('docker-compose', ['-f', COMPOSE_FILE, 'config', '-q'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
  });

  it('runs Redis with AOF appendfsync always, noeviction, the ACL file, reachable from this host only', () => {
    const redis = composeService('redis');
    expect(redis).toMatch(/--appendonly\s*\n?\s*-?\s*"?yes"?/);
    expect(redis).toMatch(/--appendfsync\s*\n?\s*-?\s*always/);
    expect(redis).toMatch(/--maxmemory-policy\s*\n?\s*-?\s*noeviction/);
    expect(redis).toMatch(/--aclfile\s*\n?\s*-?\s*\/etc\/redis\/users\.acl/);
    expect(redis).toContain('./deploy/redis/users.acl:/etc/redis/users.acl:ro');
    // Any published port is bound to the loopback interface.
    for (const m of redis.matchAll(/^\s*-\s*"?([^"\n]*:6379)"?\s*$/gm)) expect(m[1]).toMatch(/^127\.0\.0\.1:\d+:6379$/);
    expect(redis).toMatch(/restart:\s*unless-stopped/);
    expect(redis).toContain('--user healthcheck');
  });

  it("gives the worker a stop grace period above its longest stop, and restarts it", () => {
    const worker = composeService('worker');
    expect(worker).toMatch(/restart:\s*unless-stopped/);
    const grace = /stop_grace_period:\s*(\d+)s/.exec(worker);
    expect(grace, 'stop_grace_period in seconds').not.toBeNull();
    const stopTimeoutMs = Number(/INFERQ_STOP_TIMEOUT_MS:\s*"?(\d+)"?/.exec(worker)?.[1] ?? WORKER_DEFAULTS.stopTimeoutMs);
    expect(Number(grace![1]) * 1000).toBeGreaterThan(stopTimeoutMs + STOP_STEPS_MS);
    expect(worker).toContain(`inferq:\${INFERQ_REDIS_PASSWORD:-${PLACEHOLDER}}@redis:6379`);
  });
});

describe('deploy/redis/users.acl', () => {
  const binary = findRedisServerBinary();
  let dir: string;
  let server: ChildProcess | undefined;
  let port = 0;
  const conns: Redis[] = [];
  const connect = (username?: string, password?: string) => {
    // No ready check: its INFO would fail for the anonymous and health-check users and close the connection.
    const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0, retryStrategy: () => null, ...(username ? { username, password: password ?? 'unused' } : {}) });
    c.on('error', () => undefined);
    conns.push(c);
    return c;
  };

  beforeAll(async () => {
    if (!binary) return;
    dir = mkdtempSync(join(tmpdir(), 'inferq-acl-'));
    copyFileSync(ACL_FILE, join(dir, 'users.acl'));
    port = await freePort();
    server = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction', '--aclfile', join(dir, 'users.acl'), '--daemonize', 'no', '--logfile', join(dir, 'redis.log')], { stdio: 'ignore' });
    // Ready once the health-check user gets PONG (bounded: 10 s).
    for (let i = 0; ; i++) {
      const probe = connect('healthcheck');
      try {
        await probe.connect();
        if ((await probe.ping()) === 'PONG') break;
      } catch {
        if (server.exitCode !== null) throw new Error(`redis-server rejected users.acl: ${readFileSync(join(dir, 'redis.log'), 'utf8').slice(-2000)}`);
        if (i > 400) throw new Error('redis-server with users.acl not ready after 10 s');
        await new Promise((r) => setTimeout(r, 25));
      } finally {
        probe.disconnect();
      }
    }
  });

  afterAll(async () => {
    for (const c of conns) c.disconnect();
    if (server && server.exitCode === null) {
      const exited = new Promise((r) => server!.once('exit', r));
      server.kill('SIGKILL');
      await exited;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const NO_REDIS = 'no redis-server to load users.acl (set REDIS_SERVER_BIN or install redis-server)';

  it('turns the default user off and lets the health-check user PING only', async (ctx) => {
    ctx.skip(!binary, NO_REDIS);
    const anonymous = connect();
    await anonymous.connect();
    await expect(anonymous.get('inferq:x')).rejects.toThrow(/NOAUTH/);
    const health = connect('healthcheck');
    await health.connect();
    expect(await health.ping()).toBe('PONG');
    await expect(health.get('inferq:x')).rejects.toThrow(/NOPERM/);
  });

  it('lets a worker and a client run as user inferq on prefix inferq, and nothing outside it', async (ctx) => {
    ctx.skip(!binary, NO_REDIS);
    const url = `redis://inferq:${PLACEHOLDER}@127.0.0.1:${port}`;
    const worker = new InferenceWorker<number, number>({ redis: url, model: 'acl', run: async (xs) => xs.map((x) => x * 2), config: { batchTimeoutMs: 5 } });
    await worker.start();
    const client = new InferenceClient<number, number>({ redis: url, model: 'acl' });
    try {
      expect((await client.inferBatch([1, 2, 3], { timeoutMs: 20_000 })).map((r) => r.output)).toEqual([2, 4, 6]);
    } finally {
      await client.close();
      await worker.stop();
    }
    const inferq = connect('inferq', PLACEHOLDER);
    await inferq.connect();
    await expect(inferq.set('other:x', '1')).rejects.toThrow(/NOPERM/);
    await expect(inferq.flushall()).rejects.toThrow(/NOPERM/);
  });
});

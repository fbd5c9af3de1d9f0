/**
 * The README's quick start runs as written, and the docs hold together:
 *   - every block marked `<!-- quickstart: ... -->` in README.md is used: the
 *     `file=<name>` blocks are written to a directory inside the workspace
 *     (so `@inferq/client` resolves, from its sources), the `commands` block
 *     is run line by line (the worker CLI, the client script, `inferq stats`)
 *     against a test Redis, and the client's output is checked against the
 *     `output` block;
 *   - README.md stays short (≤ 250 lines);
 *   - every relative link of README.md and docs/*.md names a file that exists
 *     inside the repository, and its `#anchor`, if any, a heading of it;
 *   - docs/errors.md documents every error code, and docs/keys.md lists
 *     exactly the keys of `modelKeys` (packages/core/src/protocol/keys.ts).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, modelKeys } from '@inferq/core';
import { shardCountKey } from '@inferq/core/protocol';
import { CLIENT_CLI, REPO_ROOT, SOURCE_NODE_ARGS, WORKER_CLI, findRedisServerBinary, startTestRedis, type TestRedis } from '@inferq/testkit';

const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
const DOCS = join(REPO_ROOT, 'docs');

/** The quick start's marked blocks, by mark (`file=model.mjs`, `commands`, `output`). */
function quickstartBlocks(md: string): Map<string, string> {
  const blocks = new Map<string, string>();
  for (const m of md.matchAll(/<!-- quickstart: ([^>]+?) -->\s*\n```[\w-]*\n([\s\S]*?)```/g)) {
    expect(blocks.has(m[1]!), `quickstart block '${m[1]}' marked twice`).toBe(false);
    blocks.set(m[1]!, m[2]!);
  }
  return blocks;
}

interface Run {
  pid: number;
  lines: string[];
  stderr: () => string;
  exited: Promise<number | null>;
  waitForLine(match: RegExp, timeoutMs: number): Promise<string>;
  /** SIGTERM by pid, SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<number | null>;
}

/** `node <SOURCE_NODE_ARGS> <script> ...args` in `cwd`, killed by pid after `timeoutMs` at the latest. */
function runNode(script: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs: number): Run {
  const child = spawn(process.execPath, [...SOURCE_NODE_ARGS, script, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not spawn ${script}`);
  const lines: string[] = [];
  let err = '';
  const waiters: Array<{ match: RegExp; done: (l: string) => void }> = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    for (const w of [...waiters]) if (w.match.test(line)) (waiters.splice(waiters.indexOf(w), 1), w.done(line));
  });
  child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
  const kill = (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) process.kill(pid, signal);
  };
  const deadline = setTimeout(() => kill('SIGKILL'), timeoutMs);
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => (clearTimeout(deadline), res(code))));
  return {
    pid,
    lines,
    stderr: () => err,
    exited,
    waitForLine(match, ms) {
      const seen = lines.find((l) => match.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((res, rej) => {
        const t = setTimeout(() => rej(new Error(`no line ${match} within ${ms} ms; stderr:\n${err}`)), ms);
        waiters.push({ match, done: (l) => (clearTimeout(t), res(l)) });
        void exited.then((code) => (clearTimeout(t), rej(new Error(`exited (${code}) before printing ${match}; stderr:\n${err}`))));
      });
    },
    async stop(graceMs = 10_000) {
      kill('SIGTERM');
      const t = setTimeout(() => kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** Splits a shell line into words (no quotes are used in the quick start; refuse them rather than guess). */
function words(line: string): string[] {
  expect(line, 'quick start commands are plain words').not.toMatch(/["'`$\\|;<>]/);
  return line.trim().split(/\s+/);
}

describe('the README quick start', () => {
  let redis: TestRedis;
  let dir: string;
  const started: Run[] = [];

  beforeAll(async () => {
    // Its keys use the default prefix: a Redis of its own when one can be started.
    redis = await startTestRedis({ ownServer: findRedisServerBinary() !== undefined });
    // Inside the workspace, so that `@inferq/client` resolves (packages/integration/node_modules), and tsx from the root.
    dir = join(REPO_ROOT, 'packages', 'integration', '.tmp', `readme-${process.pid}-${randomBytes(3).toString('hex')}`);
    mkdirSync(dir, { recursive: true });
  });
  afterAll(async () => {
    await Promise.all(started.map((r) => r.stop(5_000)));
    rmSync(dir, { recursive: true, force: true });
    await redis?.cleanup();
  });

  it('runs: the model module, a worker, the client script and inferq stats', async () => {
    const blocks = quickstartBlocks(README);
    expect([...blocks.keys()].sort()).toEqual(['commands', 'file=client.mjs', 'file=model.mjs', 'output']);
    for (const [mark, text] of blocks) if (mark.startsWith('file=')) writeFileSync(join(dir, mark.slice('file='.length)), text);
    expect(blocks.get('file=client.mjs')).toContain("from '@inferq/client'");

    const env: NodeJS.ProcessEnv = { REDIS_URL: redis.url };
    let clientOut: string[] | undefined;
    let statsOut: string | undefined;
    for (const raw of blocks.get('commands')!.split('\n')) {
      const line = raw.replace(/\s+#.*$/, '').trim();
      if (line === '') continue;
      const w = words(line.replace(/\s*&$/, ''));
      if (w[0] === 'export') {
        // The README's Redis URL stands for the test's.
        expect(w[1]).toMatch(/^REDIS_URL=redis:\/\//);
      } else if (w[0] === 'npx' && w[1] === 'inferq-worker') {
        expect(line, 'the worker runs in the background').toMatch(/&$/);
        const worker = runNode(WORKER_CLI, w.slice(2), dir, env, 120_000);
        started.push(worker);
        await worker.waitForLine(/^READY /, 60_000);
      } else if (w[0] === 'node' && w.length === 2) {
        const client = runNode(w[1]!, [], dir, env, 60_000);
        const code = await client.exited;
        expect(code, client.stderr()).toBe(0);
        clientOut = client.lines;
      } else if (w[0] === 'npx' && w[1] === 'inferq') {
        const cli = runNode(CLIENT_CLI, w.slice(2), dir, env, 60_000);
        const code = await cli.exited;
        expect(code, cli.stderr()).toBe(0);
        statsOut = cli.lines.join('\n');
      } else {
        throw new Error(`the test does not know how to run this quick start line: ${line}`);
      }
    }

    // The output block, line by line; `<worker id>` stands for the worker's id (host-pid-random).
    const expected = blocks.get('output')!.trimEnd().split('\n');
    expect(clientOut).toHaveLength(expected.length);
    expected.forEach((e, i) => {
      const pattern = new RegExp(`^${e.split('<worker id>').map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[\\w.-]+')}$`);
      expect(clientOut![i], `output line ${i + 1}`).toMatch(pattern);
    });
    // 1 + 2 + 1 requests, the last one answered from the cache.
    expect(statsOut).toMatch(/requests\s+4\b/);
    expect(statsOut).toMatch(/cache hit rate\s+25\.0 %/);
  });
});

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchorsOf(md: string): Set<string> {
  const out = new Set<string>();
  const counts = new Map<string, number>();
  for (const m of withoutFences(md).matchAll(/^#{1,6}\s+(.+)$/gm)) {
    const base = slug(m[1]!);
    const n = counts.get(base) ?? 0;
    counts.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

function withoutFences(md: string): string {
  return md.replace(/^```[\s\S]*?^```/gm, '');
}

/** Without code: a link-like text in code is not a link. */
function withoutCode(md: string): string {
  return withoutFences(md).replace(/`[^`\n]*`/g, '');
}

describe('the README and docs', () => {
  const pages = ['README.md', ...readdirSync(DOCS).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

  it('the README is at most 250 lines', () => {
    expect(README.split('\n').length - (README.endsWith('\n') ? 1 : 0)).toBeLessThanOrEqual(250);
  });

  it('every relative link points at a file of the repository (and its anchor at a heading)', () => {
    const broken: string[] = [];
    for (const page of pages) {
      const md = readFileSync(join(REPO_ROOT, page), 'utf8');
      for (const m of withoutCode(md).matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        const href = m[1]!;
        if (/^[a-z][a-z0-9+.-]*:/i.test(href)) continue; // https:, mailto:
        const [path, anchor] = href.split('#') as [string, string | undefined];
        const target = path === '' ? join(REPO_ROOT, page) : resolve(dirname(join(REPO_ROOT, page)), decodeURIComponent(path));
        if (relative(REPO_ROOT, target).startsWith('..')) broken.push(`${page}: ${href} is outside the repository`);
        else if (!existsSync(target)) broken.push(`${page}: ${href} does not exist`);
        else if (anchor && target.endsWith('.md') && !anchorsOf(readFileSync(target, 'utf8')).has(anchor)) broken.push(`${page}: ${href}: no such heading`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('the README links to every docs page', () => {
    for (const page of pages.filter((p) => p !== 'README.md')) expect(README, page).toContain(`](${page})`);
  });

  it('docs/errors.md documents every error code', () => {
    const errors = readFileSync(join(DOCS, 'errors.md'), 'utf8');
    for (const code of Object.values(ErrorCode)) expect(errors, code).toContain(`\`${code}\``);
  });

  it('docs/keys.md lists exactly the keys of keys.ts', () => {
    const doc = readFileSync(join(DOCS, 'keys.md'), 'utf8');
    const k = modelKeys('<model>');
    const expected = new Set([
      shardCountKey('<model>'),
      k.cacheLru,
      k.cacheVal,
      k.cacheExp,
      k.cacheBytes,
      k.stats,
      k.statsLatency,
      k.room,
      k.roomLeases,
      k.roomCounts,
      k.roomClients,
      k.limits,
      k.tenants,
      k.cacheEpoch,
      k.served,
      k.convicted,
      k.workers,
      k.flight('<cache key>'),
      k.inbox('<client id>'),
      k.inboxPending('<client id>'),
      k.clientAlive('<client id>'),
      k.jobDone('<job id>'),
      k.jobCrashes('<job id>'),
    ]);
    // The first column of the table: one key per row, BullMQ's row aside.
    const listed = [...doc.matchAll(/^\| `(inferq:\{<model>\}:[^`]*)` \|/gm)].map((m) => m[1]!).filter((key) => !key.includes(':wait'));
    expect(new Set(listed)).toEqual(expected);
    expect(listed).toHaveLength(expected.size);
  });
});

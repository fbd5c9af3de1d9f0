/**
 * Model-based property test of the client/worker protocol (fast-check commands).
 *
 * Each run builds a fresh system on a fresh key prefix (3 clients with caching
 * on, 1-2 in-process workers whose model squares `x` after sleeping `d` ms),
 * then plays a random sequence of commands against it: start calls (never
 * awaited; some with timeouts of a few ms, which expire while their claim is
 * in Redis), bursts of calls in one tick, wait, remove waiting jobs as an
 * operator would, kill a worker (gracefully or as a crash) and start another,
 * kill a client (its connections drop, as when its process dies between
 * reserving queue room and enqueuing) and start another, restart Redis (at
 * most once). The model sleeps `d` ms, some `d` past modelTimeoutMs (model
 * timeouts, job retries); clients run under maxQueueLength (the queue ledger);
 * joiners with later deadlines make workers drop items for an earlier one
 * (DEADLINE_EXCEEDED, then a resend).
 * Afterwards every call is checked against the promises of the protocol:
 *  - it settled, by its own deadline plus a grace (calls of a killed client excepted);
 *  - a value is the right output (y = x * x), and no two callers share one output object;
 *  - an error is typed (its `code` starts with 'INFERQ_');
 *  - INFERQ_TIMEOUT and INFERQ_DEADLINE_EXCEEDED never come before the
 *    caller's own deadline (an earlier one would be another flight's error).
 * And the two invariants of "exactly once, by construction":
 *  - no flight in Redis whose owner is a live client that does not track it
 *    (owned and never to be sent), checked after waits and before the drain;
 *  - at quiescence (no job left) the queue ledger is empty: every place
 *    admitted was given back exactly once (killed clients' within a lease).
 *
 * The harness also requires worker.stop() to return (its stopTimeoutMs is
 * 1000; STOP_BOUND_MS below): this found stop() hanging right after a Redis
 * restart (replay: FC_SEED=1681724600 FC_PATH=4, fixed since).
 *
 * Replay a failure: FC_SEED=<seed> FC_PATH=<path>
 * npx vitest run packages/integration/test/protocol-model.test.ts
 * (FC_REPLAY_PATH=<replayPath> as well, only with the path of the final counterexample;
 * FC_RUNS and FC_MAX_COMMANDS change the budget; PM_DEBUG=1 prints the trace live.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Queue, type Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { modelKeys } from '@inferq/core';
import { InferenceClient, type ClientInferenceResult } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { startTestRedis, type TestRedis } from '@inferq/testkit';

type In = { x: number; d: number };
type Out = { y: number };

const MODEL = 'pm';
const NUM_CLIENTS = 3;
/** A call must have settled by its deadline plus this. */
const SETTLE_GRACE_MS = 2500;
/** Timer slop allowed on "not before the deadline". */
const EARLY_SLOP_MS = 20;
/** After the commands, wait at most until the latest deadline plus this. */
const DRAIN_AFTER_DEADLINE_MS = 3000;

const SEED = process.env.FC_SEED !== undefined ? Number(process.env.FC_SEED) : (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
const PATH = process.env.FC_PATH;
const REPLAY_PATH = process.env.FC_REPLAY_PATH;
const NUM_RUNS = Number(process.env.FC_RUNS ?? 20);
const MAX_COMMANDS = Number(process.env.FC_MAX_COMMANDS ?? 12);
/** fast-check stops starting runs (and shrinking) past this; the test timeout is above it. */
const TIME_LIMIT_MS = 190_000;
const TEST_TIMEOUT_MS = 240_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

type Outcome =
  | { ok: true; y: unknown; output: unknown; cached: boolean; coalesced: boolean; worker: string | undefined; at: number }
  | { ok: false; code: unknown; name: string; message: string; at: number };

interface Call {
  n: number;
  client: number;
  /** The client object that sent it (a killed client's calls are not checked). */
  by: InferenceClient<In, Out>;
  x: number;
  d: number;
  timeoutMs: number;
  start: number;
  deadline: number;
  done: Promise<void>;
  outcome?: Outcome;
}

interface WorkerSlot {
  worker: InferenceWorker<In, Out>;
  crashed: boolean;
  /** Its stop() hung (reported once, released by hand). */
  hung: boolean;
}

/** The system under test of one run, and what happened to it. */
interface Real {
  t0: number;
  prefix: string;
  clients: InferenceClient<In, Out>[];
  /** Clients killed (connections dropped): closed at teardown, their calls not checked. */
  killedClients: InferenceClient<In, Out>[];
  workers: WorkerSlot[];
  /** Workers taken out of service (stopped, or crashed and stopped at teardown). */
  retired: WorkerSlot[];
  queue: Queue;
  calls: Call[];
  trace: string[];
  /** Harness steps that failed during the commands (a hung stop, say). */
  harnessFailures: string[];
}

/** The model is minimal: the checks are on the log of calls. */
interface Model {
  restarts: number;
  workers: number;
  calls: number;
}

let redis: TestRedis;
/**
 * The run in progress. fast-check's time limit can give up on a run while it
 * still goes on: the file's Redis is cleaned up only after it ended, and no
 * run restarts Redis once the file is shutting down.
 */
let currentRun: Promise<unknown> | undefined;
let shuttingDown = false;

beforeAll(async () => {
  redis = await startTestRedis({ ownServer: true });
});
afterAll(async () => {
  shuttingDown = true;
  if (currentRun) await Promise.race([currentRun.catch(() => undefined), sleep(45_000)]);
  await redis?.cleanup();
});

const square = async (xs: In[]): Promise<Out[]> => {
  const d = Math.max(0, ...xs.map((i) => i.d));
  if (d > 0) await sleep(d);
  return xs.map((i) => ({ y: i.x * i.x }));
};

async function startWorker(prefix: string): Promise<WorkerSlot> {
  const worker = new InferenceWorker<In, Out>({
    redis: redis.url,
    model: MODEL,
    prefix,
    run: square,
    config: { maxBatchSize: 8, batchTimeoutMs: 5, enableCaching: true, numWorkers: 2 },
    modelTimeoutMs: MODEL_TIMEOUT_MS,
    lockDurationMs: 1000,
    stalledIntervalMs: 300,
    stopTimeoutMs: 1000,
  });
  await worker.start();
  return { worker, crashed: false, hung: false };
}

/**
 * A crash, as close as one process can get: the worker's connections drop
 * at once (nothing more reaches Redis from it: no result, no lock renewal,
 * no completion), and BullMQ's loop is force-closed without waiting for its
 * jobs. The batches it holds run on into closed connections. Its locks
 * expire and another worker's stalled check retries its jobs.
 */
async function crash(slot: WorkerSlot): Promise<void> {
  slot.crashed = true;
  const inner = slot.worker as unknown as { worker?: Worker; cmd?: Redis; bullConnection?: Redis };
  const closing = inner.worker?.close(true).catch(() => undefined) ?? Promise.resolve();
  inner.cmd?.disconnect();
  inner.bullConnection?.disconnect();
  await Promise.race([closing, sleep(2000)]);
}

/** stopTimeoutMs of the workers below is 1000: stop() is promised to return well within this. */
const STOP_BOUND_MS = 6000;

/** Past this a model call times out (some inputs sleep longer: model timeouts and job retries). */
const MODEL_TIMEOUT_MS = 500;
/** Every client's bound: large enough to refuse rarely, so that the ledger is exercised, not only full. */
const MAX_QUEUE_LENGTH = 300;

function newClient(prefix: string): InferenceClient<In, Out> {
  return new InferenceClient<In, Out>({ redis: redis.url, model: MODEL, prefix, config: { enableCaching: true, maxQueueLength: MAX_QUEUE_LENGTH }, statsFlushIntervalMs: 50 });
}

/** A client process dying, as close as one process gets: its connections drop at once, nothing more reaches Redis. */
function crashClient(c: InferenceClient<In, Out>): void {
  const inner = c as unknown as { cmd: Redis; queueConnection: Redis; shards: Array<{ blocking: Redis; monitor: { stop(): Promise<void> } }>; leaseTimer?: NodeJS.Timeout };
  clearInterval(inner.leaseTimer);
  inner.cmd.disconnect();
  inner.queueConnection.disconnect();
  for (const s of inner.shards) s.blocking.disconnect();
}

/**
 * Stops a worker within STOP_BOUND_MS; past it, releases what it holds by
 * hand (its batcher, stats and connections) and reports the hang.
 */
async function stopWorker(slot: WorkerSlot, what: string): Promise<void> {
  if (slot.hung) return;
  try {
    await bounded(what, STOP_BOUND_MS, slot.worker.stop());
  } catch (err) {
    slot.hung = true;
    const inner = slot.worker as unknown as {
      batcher?: { stop(o: { timeoutMs: number }): Promise<unknown> };
      stats?: { close(): Promise<unknown> };
      cmd?: Redis;
      bullConnection?: Redis;
    };
    await Promise.race([inner.batcher?.stop({ timeoutMs: 100 }).catch(() => undefined), sleep(1000)]);
    inner.cmd?.disconnect();
    await Promise.race([inner.stats?.close().catch(() => undefined), sleep(500)]);
    inner.bullConnection?.disconnect();
    throw err;
  }
}

async function setup(): Promise<Real> {
  const prefix = redis.newPrefix();
  const keys = modelKeys(MODEL, prefix);
  const real: Real = {
    t0: Date.now(),
    prefix,
    clients: [],
    killedClients: [],
    workers: [],
    retired: [],
    queue: new Queue(keys.queueName, { connection: { host: '127.0.0.1', port: redis.server!.port }, prefix: keys.queuePrefix }),
    calls: [],
    trace: [],
    harnessFailures: [],
  };
  real.queue.on('error', () => undefined);
  try {
    for (let i = 0; i < NUM_CLIENTS; i++) real.clients.push(newClient(prefix));
    real.workers.push(await bounded('setup: start the first worker', 10_000, startWorker(prefix)));
  } catch (err) {
    await teardown(real).catch(() => undefined);
    throw err;
  }
  real.t0 = Date.now();
  return real;
}

async function teardown(real: Real): Promise<void> {
  const hung: string[] = [];
  const step = (what: string, ms: number, p: Promise<unknown>) => bounded(what, ms, p).catch((e: Error) => void hung.push(e.message));
  await Promise.all(real.clients.map((c, i) => step(`teardown: client ${i} close({ timeoutMs: 100 })`, 10_000, c.close({ timeoutMs: 100 }))));
  await Promise.all(real.killedClients.map((c, i) => step(`teardown: killed client ${i} close({ timeoutMs: 0 })`, 10_000, c.close({ timeoutMs: 0 }))));
  const slots = [...real.workers, ...real.retired];
  await Promise.all(slots.map((s, i) => stopWorker(s, `teardown: worker ${i}${s.crashed ? ' (crashed)' : ''} stop()`).catch((e: Error) => void hung.push(e.message))));
  await step('teardown: queue.close()', 10_000, real.queue.close());
  if (hung.length > 0) throw new Error(`teardown hung: ${hung.join('; ')}`);
}

const rel = (real: Real, t: number) => `+${t - real.t0}ms`;

const DEBUG = process.env.PM_DEBUG === '1';

function note(real: Real, what: string): void {
  real.trace.push(`${rel(real, Date.now())} ${what}`);
  // eslint-disable-next-line no-console
  if (DEBUG) console.error(`[pm ${real.prefix.slice(-8)}] ${rel(real, Date.now())} ${what}`);
}

/** A step of the harness that must not hang: past `ms` it fails the run, naming the step. */
async function bounded<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t0 = Date.now();
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, hung]);
  } finally {
    clearTimeout(timer);
    // eslint-disable-next-line no-console
    if (DEBUG && Date.now() - t0 > 1500) console.error(`[pm] slow step: ${what} took ${Date.now() - t0} ms`);
  }
}

// ---------------------------------------------------------------- commands

type Cmd = fc.AsyncCommand<Model, Real>;

class InferCommand implements Cmd {
  constructor(
    readonly client: number,
    readonly x: number,
    readonly d: number,
    readonly timeoutMs: number,
  ) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, real: Real): Promise<void> {
    m.calls++;
    const start = Date.now();
    const by = real.clients[this.client]!;
    const call: Call = {
      n: real.calls.length,
      client: this.client,
      by,
      x: this.x,
      d: this.d,
      timeoutMs: this.timeoutMs,
      start,
      deadline: start + this.timeoutMs,
      done: Promise.resolve(),
    };
    const p = by.infer({ x: this.x, d: this.d }, { timeoutMs: this.timeoutMs });
    call.done = settleInto(call, p);
    real.calls.push(call);
    note(real, `#${call.n} ${this.toString()}`);
  }
  toString(): string {
    return `Infer(c${this.client}, x=${this.x}, d=${this.d}, t=${this.timeoutMs})`;
  }
}

function settleInto(call: Call, p: Promise<ClientInferenceResult<Out>>): Promise<void> {
  return p.then(
      (r: ClientInferenceResult<Out>) => {
        call.outcome = { ok: true, y: r.output?.y, output: r.output, cached: r.cached, coalesced: r.coalesced, worker: r.worker, at: Date.now() };
      },
      (e: unknown) => {
        const err = e as Error & { code?: unknown };
        call.outcome = { ok: false, code: err?.code, name: String(err?.name), message: String(err?.message), at: Date.now() };
      },
    );
}

/**
 * Many calls in one tick (their claims take a while) and, among them, one
 * for a shared input whose caller gives up within a few ms: while its claim
 * is in Redis. Nobody else asking for that input may be blocked by it.
 */
class BurstCommand implements Cmd {
  constructor(
    readonly client: number,
    readonly size: number,
    readonly target: number,
    readonly targetTimeoutMs: number,
  ) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, real: Real): Promise<void> {
    const by = real.clients[this.client]!;
    const base = 100 + real.calls.length * 1000;
    const specs = [...Array.from({ length: this.size }, (_, i) => ({ x: base + i, t: 2000 })), { x: this.target, t: this.targetTimeoutMs }];
    for (const { x, t } of specs) {
      m.calls++;
      const start = Date.now();
      const call: Call = { n: real.calls.length, client: this.client, by, x, d: 0, timeoutMs: t, start, deadline: start + t, done: Promise.resolve() };
      call.done = settleInto(call, by.infer({ x, d: 0 }, { timeoutMs: t }));
      real.calls.push(call);
    }
    note(real, this.toString());
  }
  toString(): string {
    return `Burst(c${this.client}, ${this.size} + x=${this.target} t=${this.targetTimeoutMs})`;
  }
}

/** A client process dies (between reserving queue room and enqueuing, among other moments) and another starts. */
class KillClientCommand implements Cmd {
  constructor(readonly which: number) {}
  check(): boolean {
    return true;
  }
  async run(_m: Model, real: Real): Promise<void> {
    const i = this.which % real.clients.length;
    const dead = real.clients[i]!;
    crashClient(dead);
    real.killedClients.push(dead);
    real.clients[i] = newClient(real.prefix);
    note(real, this.toString());
  }
  toString(): string {
    return `KillClient(${this.which})`;
  }
}

class WaitCommand implements Cmd {
  constructor(readonly ms: number) {}
  check(): boolean {
    return true;
  }
  async run(_m: Model, real: Real): Promise<void> {
    note(real, this.toString());
    await sleep(this.ms);
    await checkOwnedFlights(real);
  }
  toString(): string {
    return `Wait(${this.ms})`;
  }
}

class RemoveWaitingJobsCommand implements Cmd {
  check(): boolean {
    return true;
  }
  async run(_m: Model, real: Real): Promise<void> {
    let removed = 0;
    try {
      const jobs = await bounded('RemoveWaitingJobs: getJobs', 10_000, real.queue.getJobs(['wait']));
      for (const job of jobs) {
        try {
          await bounded('RemoveWaitingJobs: job.remove', 10_000, job.remove());
          removed++;
        } catch {
          // taken by a worker meanwhile, or already gone
        }
      }
    } catch {
      // Redis unavailable: nothing removed
    }
    note(real, `${this.toString()} removed ${removed}`);
  }
  toString(): string {
    return 'RemoveWaitingJobs';
  }
}

class KillWorkerCommand implements Cmd {
  constructor(
    readonly which: number,
    readonly hard: boolean,
    readonly replacements: 1 | 2,
  ) {}
  check(m: Model): boolean {
    return m.workers > 0;
  }
  async run(m: Model, real: Real): Promise<void> {
    const i = this.which % real.workers.length;
    const [slot] = real.workers.splice(i, 1);
    real.retired.push(slot!);
    note(real, `${this.toString()} begin`);
    if (this.hard) await crash(slot!);
    else await stopWorker(slot!, 'KillWorker: graceful worker.stop()').catch((e: Error) => real.harnessFailures.push(e.message));
    // Keep one or two workers running.
    const want = Math.max(1, Math.min(2, real.workers.length + this.replacements));
    while (real.workers.length < want) real.workers.push(await bounded('KillWorker: start a new worker', 10_000, startWorker(real.prefix)));
    m.workers = real.workers.length;
    note(real, `${this.toString()} end, ${real.workers.length} worker(s)`);
  }
  toString(): string {
    return `KillWorker(${this.which}, ${this.hard ? 'crash' : 'graceful'}, +${this.replacements})`;
  }
}

class RestartRedisCommand implements Cmd {
  check(m: Model): boolean {
    return m.restarts === 0;
  }
  async run(m: Model, real: Real): Promise<void> {
    m.restarts++;
    if (shuttingDown) return note(real, 'RestartRedis skipped: the file is shutting down');
    note(real, 'RestartRedis begin');
    await bounded('RestartRedis: server.restart()', 20_000, redis.server!.restart());
    note(real, 'RestartRedis end');
  }
  toString(): string {
    return 'RestartRedis';
  }
}

const inferArb = fc
  .record({
    client: fc.integer({ min: 0, max: NUM_CLIENTS - 1 }),
    x: fc.integer({ min: 0, max: 4 }),
    d: fc.constantFrom(0, 0, 50, 300, 800),
    timeoutMs: fc.constantFrom(2, 150, 400, 2000, 5000),
  })
  .map((r): Cmd => new InferCommand(r.client, r.x, r.d, r.timeoutMs));
const waitArb = fc.constantFrom(10, 100, 500).map((ms): Cmd => new WaitCommand(ms));
const removeArb = fc.constant(null).map((): Cmd => new RemoveWaitingJobsCommand());
const killArb = fc
  .record({ which: fc.nat(3), hard: fc.boolean(), replacements: fc.constantFrom(1 as const, 2 as const) })
  .map((r): Cmd => new KillWorkerCommand(r.which, r.hard, r.replacements));
const restartArb = fc.constant(null).map((): Cmd => new RestartRedisCommand());
const burstArb = fc
  .record({ client: fc.integer({ min: 0, max: NUM_CLIENTS - 1 }), size: fc.constantFrom(50, 200), target: fc.integer({ min: 0, max: 4 }), t: fc.constantFrom(1, 3) })
  .map((r): Cmd => new BurstCommand(r.client, r.size, r.target, r.t));
const killClientArb = fc.nat(NUM_CLIENTS - 1).map((i): Cmd => new KillClientCommand(i));

// fc.commands picks among the arbitraries uniformly: repeats weigh them (restart is rare).
const commandArbs: fc.Arbitrary<Cmd>[] = [
  inferArb, inferArb, inferArb, inferArb, inferArb, inferArb,
  waitArb, waitArb, waitArb,
  removeArb,
  killArb,
  restartArb,
  burstArb,
  killClientArb,
  inferArb, inferArb, inferArb, inferArb, inferArb, inferArb,
  waitArb, waitArb, waitArb,
  removeArb,
  killArb,
  burstArb,
];

// ---------------------------------------------------------------- checks

async function drain(real: Real): Promise<void> {
  if (real.calls.length === 0) return;
  const until = Math.max(...real.calls.map((c) => c.deadline)) + DRAIN_AFTER_DEADLINE_MS;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(real.calls.map((c) => c.done)),
    new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, until - Date.now())))),
  ]).finally(() => clearTimeout(timer));
}

function describeCall(real: Real, c: Call): string {
  const head = `#${c.n} c${c.client} x=${c.x} d=${c.d} t=${c.timeoutMs} start ${rel(real, c.start)} deadline ${rel(real, c.deadline)}`;
  const o = c.outcome;
  if (!o) return `${head}: NOT SETTLED`;
  const when = `at ${rel(real, o.at)} (${o.at - c.deadline >= 0 ? '+' : ''}${o.at - c.deadline} ms vs deadline)`;
  return o.ok
    ? `${head}: ok y=${JSON.stringify(o.y)} cached=${o.cached} coalesced=${o.coalesced} ${when}`
    : `${head}: ${o.name} ${String(o.code)}: ${o.message} ${when}`;
}

/**
 * No flight in Redis is owned by a live client that does not track it: such
 * a flight would never be sent, and would block its input for everyone until
 * it expired. Asked twice, 300 ms apart, so that a release on its way is not
 * taken for a leak; violations go to `real.harnessFailures`.
 */
async function checkOwnedFlights(real: Real): Promise<void> {
  const conn = redis.connect();
  try {
    const suspects = async (): Promise<Set<string>> => {
      const out = new Set<string>();
      const keys = modelKeys(MODEL, real.prefix);
      const flightKeys = await bounded('checkOwnedFlights: scan', 10_000, conn.keys(`${keys.root}:flight:*`));
      for (const k of flightKeys) {
        const [id, own] = await conn.hmget(k, 'id', 'own');
        if (!id || !own) continue;
        const owner = real.clients.find((c) => c.id === own);
        if (!owner) continue; // a killed client's flight: its waiters take it over
        const tracked = (owner as unknown as { table: { get(id: string): { state: string } | undefined } }).table.get(id);
        if (!tracked || tracked.state === 'settled' || tracked.state === 'waiter' || tracked.state === 'new') out.add(`${k} id=${id} own=${own} state=${tracked?.state ?? 'untracked'}`);
      }
      return out;
    };
    const first = await suspects();
    if (first.size === 0) return;
    await sleep(300);
    const second = await suspects();
    for (const s of second) if (first.has(s)) real.harnessFailures.push(`a flight owned by a live client that does not track it: ${s}`);
  } catch (err) {
    if (!/Connection is closed|ECONNREFUSED|LOADING/.test(String((err as Error)?.message))) throw err;
  } finally {
    conn.disconnect();
  }
}

/**
 * At quiescence (no job waiting or running), the queue ledger is empty:
 * every place admitted was given back exactly once. Killed clients' places
 * go back when their lease ends (3 s) and a worker reclaims them (every 2 s).
 */
async function checkLedger(real: Real): Promise<string[]> {
  const conn = redis.connect();
  const keys = modelKeys(MODEL, real.prefix);
  try {
    const until = Date.now() + 15_000;
    let jobs = Infinity;
    let held = Infinity;
    while (Date.now() < until) {
      const [wait, active, delayed, prioritized] = await Promise.all([
        conn.llen(keys.queue('wait')),
        conn.llen(keys.queue('active')),
        conn.zcard(keys.queue('delayed')),
        conn.zcard(keys.queue('prioritized')),
      ]);
      jobs = wait + active + delayed + prioritized;
      held = await conn.zcard(keys.room);
      if (jobs === 0 && held === 0) return [];
      await sleep(200);
    }
    const members = await conn.zrange(keys.room, 0, 20);
    return [`the queue ledger holds ${held} place(s) with ${jobs} job(s) left (first: ${members.join(', ')})`];
  } catch (err) {
    return [`checking the ledger failed: ${(err as Error).message}`];
  } finally {
    conn.disconnect();
  }
}

function violations(real: Real): string[] {
  const out: string[] = [];
  const outputs = new Map<unknown, number>();
  for (const c of real.calls) {
    if (real.killedClients.includes(c.by)) continue; // its process is dead: nobody waits for these
    const o = c.outcome;
    if (o?.ok && typeof o.output === 'object' && o.output !== null) {
      const other = outputs.get(o.output);
      if (other !== undefined) out.push(`calls #${other} and #${c.n} got the same output object`);
      outputs.set(o.output, c.n);
    }
    const bad = (why: string) => out.push(`${why} -- ${describeCall(real, c)}`);
    if (!o) {
      bad(`call #${c.n} never settled (checked until ${rel(real, Date.now())})`);
      continue;
    }
    if (o.at > c.deadline + SETTLE_GRACE_MS) bad(`call #${c.n} settled ${o.at - c.deadline} ms after its deadline`);
    if (o.ok) {
      if (o.y !== c.x * c.x) bad(`call #${c.n} got a wrong output`);
      continue;
    }
    if (typeof o.code !== 'string' || !o.code.startsWith('INFERQ_')) {
      bad(`call #${c.n} rejected with an untyped error`);
      continue;
    }
    if (o.code === 'INFERQ_TIMEOUT' && o.at < c.deadline - EARLY_SLOP_MS) bad(`call #${c.n} got INFERQ_TIMEOUT before its deadline`);
    if (o.code === 'INFERQ_DEADLINE_EXCEEDED' && o.at < c.deadline - EARLY_SLOP_MS) {
      bad(`call #${c.n} got INFERQ_DEADLINE_EXCEEDED before its deadline (another flight's error)`);
    }
  }
  return out;
}

// ---------------------------------------------------------------- the property

const stats = { runs: 0, commands: 0, calls: 0, settledOk: 0, errors: new Map<string, number>(), restarts: 0, kills: 0, removes: 0 };

/** One run of the property: a fresh system, the commands, the checks, teardown. */
async function runOnce(cmds: Iterable<Cmd>): Promise<void> {
  const real = await setup();
  const failures: string[] = [];
  try {
    await fc.asyncModelRun(() => ({ model: { restarts: 0, workers: real.workers.length, calls: 0 }, real }), cmds);
  } catch (err) {
    failures.push(`a command failed: ${(err as Error).message}`);
  }
  await checkOwnedFlights(real).catch((err: Error) => real.harnessFailures.push(`checkOwnedFlights: ${err.message}`));
  await drain(real);
  failures.push(...real.harnessFailures, ...violations(real));
  failures.push(...(await checkLedger(real)));
  await teardown(real).catch((err: Error) => failures.push(err.message));
  stats.runs++;
  stats.commands += [...cmds].length;
  stats.calls += real.calls.length;
  for (const line of real.trace) {
    if (line.includes('RestartRedis begin')) stats.restarts++;
    if (line.includes('KillWorker') && line.endsWith('begin')) stats.kills++;
    if (line.includes('RemoveWaitingJobs')) stats.removes++;
  }
  for (const c of real.calls) {
    if (c.outcome?.ok) stats.settledOk++;
    else if (c.outcome) stats.errors.set(String(c.outcome.code), (stats.errors.get(String(c.outcome.code)) ?? 0) + 1);
  }
  if (failures.length > 0) {
    // The violations come last: a CI log that keeps only its tail still shows them.
    throw new Error(
      [
        'trace:',
        ...real.trace.map((t) => `  ${t}`),
        'calls:',
        ...real.calls.map((c) => `  ${describeCall(real, c)}`),
        `${failures.length} violation(s):`,
        ...failures.map((f) => `  ${f}`),
      ].join('\n'),
    );
  }
}

describe('protocol model (fast-check commands)', () => {
  it(
    `every call settles once, in time, with the right output or its own typed error (seed ${SEED})`,
    async () => {
      const t0 = Date.now();
      // eslint-disable-next-line no-console
      console.log(`[protocol-model] seed=${SEED}${PATH ? ` path=${PATH}` : ''} runs=${NUM_RUNS} maxCommands=${MAX_COMMANDS}`);
      const property = fc.asyncProperty(
        fc.commands(commandArbs, { maxCommands: MAX_COMMANDS, size: 'max', ...(REPLAY_PATH ? { replayPath: REPLAY_PATH } : {}) }),
        (cmds) => {
          const run = runOnce(cmds);
          currentRun = run;
          return run;
        },
      );
      const result = await fc.check(property, {
        seed: SEED,
        ...(PATH ? { path: PATH } : {}),
        numRuns: NUM_RUNS,
        interruptAfterTimeLimit: TIME_LIMIT_MS,
        markInterruptAsFailure: false,
        verbose: 1,
      });
      const errors = [...stats.errors].map(([k, v]) => `${k}=${v}`).join(' ');
      // eslint-disable-next-line no-console
      console.log(
        `[protocol-model] ${stats.runs} runs (incl. shrinking), ${stats.commands} commands, ${stats.calls} calls: ${stats.settledOk} ok, errors {${errors}}; ` +
          `${stats.kills} worker kills, ${stats.removes} job removals, ${stats.restarts} Redis restarts; ${Date.now() - t0} ms` +
          (result.interrupted ? ` (interrupted after ${result.numRuns} runs)` : ''),
      );
      if (result.failed) {
        const why = result.errorInstance instanceof Error ? result.errorInstance.message : String(result.errorInstance);
        // The replay line comes last, after the (long) failure: a CI log that keeps only its tail still shows it.
        const commands = result.counterexample ? String(result.counterexample[0]) : '(none)';
        throw new Error(
          `Failure of the counterexample:\n${why}\n\nCounterexample (shrunk ${result.numShrinks} times): ${commands}\n` +
            `Replay: FC_SEED=${result.seed} FC_PATH=${result.counterexamplePath ?? ''} npx vitest run packages/integration/test/protocol-model.test.ts`,
        );
      }
      expect(result.failed).toBe(false);
    },
    TEST_TIMEOUT_MS,
  );
});

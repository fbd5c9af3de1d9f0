/**
 * A local Redis Cluster for tests: `masters * (1 + replicasPerMaster)`
 * `redis-server` child processes on free ports of 127.0.0.1, each in its own
 * temp directory, joined with `redis-cli --cluster create`. A test can SIGKILL
 * a master (by pid) and wait for its replica to take over. Every process is
 * stopped by pid, never by name, and every wait is bounded.
 *
 * Needs Redis >= 7.0: each node's cluster bus port is set with
 * `--cluster-port` (7.0+) to a second free port, because the default
 * (port + 10000) can be taken or, for an ephemeral port, above 65535.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './free-port.js';
import { findRedisServerBinary } from './redis-server-process.js';

// cluster-key-slot (the CRC16 ioredis itself uses) ships no type declarations.
const calculateSlot = createRequire(import.meta.url)('cluster-key-slot') as (key: string) => number;

export const CLUSTER_SLOTS = 16384;

export interface RedisClusterOptions {
  /** Number of masters (redis-cli needs at least 3). Default 3. */
  masters?: number;
  /** Replicas of each master. Default 1. */
  replicasPerMaster?: number;
  /** Path of the redis-server binary. Default: `REDIS_SERVER_BIN` or the one on PATH. redis-cli is looked up next to it, then `REDIS_CLI_BIN`, then PATH. */
  binary?: string;
  /** `--cluster-node-timeout`. Default 2000 ms, so a failover takes seconds, not tens of seconds. */
  nodeTimeoutMs?: number;
  /** Bound on `redis-cli --cluster create` and on the wait for the cluster to converge (each). Default 30 000 ms. */
  readyTimeoutMs?: number;
}

export interface RedisClusterNode {
  host: '127.0.0.1';
  port: number;
  pid: number;
  /** False once the process has exited (e.g. after `killMaster`). */
  running: boolean;
}

export interface RedisClusterMaster {
  host: string;
  port: number;
  /** Pid of our child process serving this port (undefined only for a node this helper did not start). */
  pid: number | undefined;
  nodeId: string;
  /** Inclusive slot ranges, ascending. */
  slots: Array<[number, number]>;
  /** Ports of this master's replicas that the queried node does not consider failing (CLUSTER NODES). */
  replicas: number[];
}

export interface KillMasterOptions {
  /** Bound on the wait for a replica to be promoted and the cluster to be ok again. Default 30 000 ms. */
  timeoutMs?: number;
}

export type ClusterSupport = { ok: true } | { ok: false; reason: string };

/** The cluster hash slot of a key (hash tags honoured), as ioredis computes it. */
export function keySlot(key: string): number {
  return calculateSlot(key);
}

/** redis-cli next to the given redis-server, else `REDIS_CLI_BIN`, else the one on PATH. */
export function findRedisCliBinary(redisServerBinary?: string): string | undefined {
  const candidates: string[] = [];
  if (redisServerBinary && redisServerBinary.includes('/')) candidates.push(join(dirname(redisServerBinary), 'redis-cli'));
  if (process.env.REDIS_CLI_BIN) candidates.push(process.env.REDIS_CLI_BIN);
  candidates.push('redis-cli', '/usr/bin/redis-cli', '/usr/local/bin/redis-cli');
  for (const c of candidates) {
    if (c.includes('/') && !existsSync(c)) continue;
    const r = spawnSync(c, ['--version'], { stdio: 'ignore', timeout: 5000 });
    if (r.status === 0) return c;
  }
  return undefined;
}

function redisServerMajor(binary: string): number | undefined {
  const r = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 5000 });
  const m = /v=(\d+)\./.exec(r.stdout ?? '');
  return m ? Number(m[1]) : undefined;
}

/** Whether this machine can run `RedisClusterProcess` (for `describe.skipIf(!clusterSupport().ok)`). */
export function clusterSupport(binary?: string): ClusterSupport {
  const server = binary ?? findRedisServerBinary();
  if (!server) return { ok: false, reason: 'redis-server was not found (set REDIS_SERVER_BIN or install redis-server)' };
  const major = redisServerMajor(server);
  if (major === undefined || major < 7) {
    return { ok: false, reason: `${server} is not Redis >= 7.0 (needed for --cluster-port)` };
  }
  if (!findRedisCliBinary(server)) return { ok: false, reason: 'redis-cli was not found (set REDIS_CLI_BIN or install redis-tools / redis)' };
  return { ok: true };
}

interface NodeProcess {
  port: number;
  busPort: number;
  dir: string;
  child: ChildProcess;
  pid: number;
  /** Settles when the process has exited (or failed to spawn). */
  exited: Promise<void>;
}

/** One node's view of the cluster. */
interface NodeView {
  state: string;
  covered: number;
  /** Canonical owner map: "start-end:masterPort" sorted, for comparing views. */
  owners: string;
  masters: RedisClusterMaster[];
  /** For a replica: whether its link to its master is up. Undefined for a master. */
  replicaLinkUp: boolean | undefined;
}

const live = new Set<RedisClusterProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test run that ends without stop() (crash, forgotten afterAll) must not leave servers behind.
  process.on('exit', () => {
    for (const c of live) c.killNowSync();
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function logTail(dir: string, lines = 15): string {
  try {
    return readFileSync(join(dir, 'redis.log'), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no redis.log)';
  }
}

async function withNode<T>(port: number, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 2000,
    commandTimeout: 2000,
  });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

function parseSlots(reply: unknown, pidOf: (port: number) => number | undefined): { covered: number; owners: string; masters: RedisClusterMaster[] } {
  const byPort = new Map<number, RedisClusterMaster>();
  const owners: string[] = [];
  let covered = 0;
  for (const entry of reply as unknown[][]) {
    const [start, end, master] = entry as [number, number, unknown[]];
    const host = String(master[0]);
    const port = Number(master[1]);
    covered += end - start + 1;
    owners.push(`${start}-${end}:${port}`);
    let m = byPort.get(port);
    if (!m) {
      m = { host, port, pid: pidOf(port), nodeId: String(master[2] ?? ''), slots: [], replicas: [] };
      byPort.set(port, m);
    }
    m.slots.push([start, end]);
  }
  const masters = [...byPort.values()];
  for (const m of masters) m.slots.sort((a, b) => a[0] - b[0]);
  masters.sort((a, b) => (a.slots[0]?.[0] ?? 0) - (b.slots[0]?.[0] ?? 0));
  owners.sort();
  return { covered, owners: owners.join(','), masters };
}

/**
 * Healthy replicas by master node id, from CLUSTER NODES. (CLUSTER SLOTS in
 * 7.0 lists a replica only once its gossiped replication offset is non-zero,
 * which on an idle master lags its actual sync.)
 */
function parseReplicas(nodesReply: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const line of nodesReply.split('\n')) {
    const [, addr, flags, masterId] = line.trim().split(' ');
    if (!addr || !flags || !masterId || masterId === '-') continue;
    const f = flags.split(',');
    if (!f.includes('slave') || f.some((x) => x === 'fail' || x === 'fail?' || x === 'handshake' || x === 'noaddr')) continue;
    const port = Number(/:(\d+)@/.exec(addr)?.[1]);
    if (!port) continue;
    const list = out.get(masterId) ?? [];
    list.push(port);
    out.set(masterId, list.sort((a, b) => a - b));
  }
  return out;
}

function runCli(cli: string, args: string[], timeoutMs: number, track: (c: ChildProcess | undefined) => void): Promise<{ ok: boolean; output: string; why: string }> {
  return new Promise((resolve) => {
    const child = spawn(cli, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    const finish = (ok: boolean, why: string) => {
      clearTimeout(timer);
      track(undefined);
      resolve({ ok, output: output.trimEnd(), why });
    };
    child.once('error', (err) => finish(false, `could not run ${cli}: ${err.message}`));
    child.once('close', (code, signal) => {
      if (timedOut) finish(false, `timed out after ${timeoutMs} ms`);
      else finish(code === 0, `exit code ${code}, signal ${signal}`);
    });
  });
}

export class RedisClusterProcess {
  private readonly procs: NodeProcess[] = [];
  private cliChild: ChildProcess | undefined;
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly binary: string,
    private readonly cli: string,
    private readonly masterCount: number,
    private readonly replicasPerMaster: number,
    private readonly nodeTimeoutMs: number,
    private readonly readyTimeoutMs: number,
  ) {}

  static async start(options: RedisClusterOptions = {}): Promise<RedisClusterProcess> {
    const masters = options.masters ?? 3;
    const replicas = options.replicasPerMaster ?? 1;
    if (!Number.isInteger(masters) || masters < 3) throw new Error(`RedisClusterProcess: masters must be an integer >= 3 (redis-cli --cluster create needs 3), got ${masters}`);
    if (!Number.isInteger(replicas) || replicas < 0) throw new Error(`RedisClusterProcess: replicasPerMaster must be an integer >= 0, got ${replicas}`);
    const binary = options.binary ?? findRedisServerBinary();
    if (!binary) throw new Error('RedisClusterProcess: redis-server was not found on PATH (set REDIS_SERVER_BIN or install redis-server).');
    const support = clusterSupport(binary);
    if (!support.ok) throw new Error(`RedisClusterProcess: ${support.reason}`);
    const cli = findRedisCliBinary(binary)!;
    const cluster = new RedisClusterProcess(binary, cli, masters, replicas, options.nodeTimeoutMs ?? 2000, options.readyTimeoutMs ?? 30_000);
    live.add(cluster);
    installExitHook();
    try {
      await cluster.launch();
    } catch (err) {
      await cluster.stop(); // nothing started by a failed start may outlive it
      throw err;
    }
    return cluster;
  }

  /** Every node started, with whether it still runs. */
  get nodes(): RedisClusterNode[] {
    return this.procs.map((p) => ({ host: '127.0.0.1', port: p.port, pid: p.pid, running: isRunning(p.child) }));
  }

  /** `redis://127.0.0.1:port` of every running node, for ioredis `Cluster` or inferq. */
  get startupNodes(): string[] {
    return this.procs.filter((p) => isRunning(p.child)).map((p) => `redis://127.0.0.1:${p.port}`);
  }

  /** The current masters, slot ranges ascending, as a running node sees them now (slots from CLUSTER SLOTS, replicas from CLUSTER NODES). */
  async masters(): Promise<RedisClusterMaster[]> {
    let lastErr: unknown;
    for (const p of this.procs) {
      if (!isRunning(p.child)) continue;
      try {
        return (await this.view(p.port)).masters;
      } catch (err) {
        lastErr = err;
      }
    }
    throw new Error(`RedisClusterProcess: no running node answered CLUSTER SLOTS (${String(lastErr)})`);
  }

  async masterForSlot(slot: number): Promise<RedisClusterMaster> {
    if (!Number.isInteger(slot) || slot < 0 || slot >= CLUSTER_SLOTS) throw new Error(`RedisClusterProcess: slot must be an integer in [0, ${CLUSTER_SLOTS}), got ${slot}`);
    const masters = await this.masters();
    const m = masters.find((x) => x.slots.some(([a, b]) => slot >= a && slot <= b));
    if (!m) throw new Error(`RedisClusterProcess: slot ${slot} is served by no master`);
    return m;
  }

  async masterForKey(key: string): Promise<RedisClusterMaster> {
    return this.masterForSlot(keySlot(key));
  }

  /**
   * SIGKILLs the master on `port` (by pid), then waits until one of its
   * replicas was promoted and every surviving node reports cluster_state:ok
   * with all slots covered and the same slot owners. Returns the port of the
   * new master of the killed master's slots.
   */
  async killMaster(port: number, options: KillMasterOptions = {}): Promise<number> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const proc = this.procs.find((p) => p.port === port);
    if (!proc) throw new Error(`RedisClusterProcess.killMaster: port ${port} is not a node of this cluster`);
    if (!isRunning(proc.child)) throw new Error(`RedisClusterProcess.killMaster: the node on port ${port} is not running`);
    const master = (await this.masters()).find((m) => m.port === port);
    if (!master) throw new Error(`RedisClusterProcess.killMaster: the node on port ${port} is not a master now`);
    if (master.replicas.length === 0) throw new Error(`RedisClusterProcess.killMaster: the master on port ${port} has no replica to promote`);
    const slot = master.slots[0]![0];

    proc.child.kill('SIGKILL');
    await Promise.race([proc.exited, sleep(5000)]);
    if (isRunning(proc.child)) throw new Error(`RedisClusterProcess.killMaster: pid ${proc.pid} (port ${port}) did not exit after SIGKILL`);

    let newPort = 0;
    await this.waitUntil(timeoutMs, `a replica of ${port} to be promoted (slot ${slot})`, async () => {
      const survivors = this.procs.filter((p) => isRunning(p.child));
      const views = await Promise.all(survivors.map((p) => this.view(p.port)));
      const why = checkViews(survivors, views);
      if (why) return why;
      const owner = views[0]!.masters.find((m) => m.slots.some(([a, b]) => slot >= a && slot <= b));
      if (!owner || owner.port === port) return `slot ${slot} still served by ${owner?.port ?? 'nobody'}`;
      if (!survivors.some((p) => p.port === owner.port)) return `slot ${slot} served by ${owner.port}, not a running node`;
      newPort = owner.port;
      return undefined;
    });
    return newPort;
  }

  /** SIGTERM every node (SIGKILL after 3 s), wait for all to exit, remove the temp dirs. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  /** Synchronous last resort for process 'exit': SIGKILL by pid, remove dirs. */
  killNowSync(): void {
    this.cliChild?.kill('SIGKILL');
    for (const p of this.procs) {
      if (isRunning(p.child)) p.child.kill('SIGKILL');
      rmSync(p.dir, { recursive: true, force: true });
    }
    live.delete(this);
  }

  private async shutdown(): Promise<void> {
    this.cliChild?.kill('SIGKILL');
    await Promise.all(this.procs.map((p) => terminate(p, 3000)));
    for (const p of this.procs) rmSync(p.dir, { recursive: true, force: true });
    live.delete(this);
  }

  private async launch(): Promise<void> {
    const total = this.masterCount * (1 + this.replicasPerMaster);
    const ports = new Set<number>();
    while (ports.size < total * 2) ports.add(await freePort());
    const list = [...ports];
    for (let i = 0; i < total; i++) this.spawnNode(list[2 * i]!, list[2 * i + 1]!);

    await Promise.all(this.procs.map((p) => this.waitPing(p, 10_000)));

    const args = ['--cluster', 'create', ...this.procs.map((p) => `127.0.0.1:${p.port}`), '--cluster-replicas', String(this.replicasPerMaster), '--cluster-yes'];
    const res = await runCli(this.cli, args, this.readyTimeoutMs, (c) => (this.cliChild = c));
    if (!res.ok) throw new Error(`RedisClusterProcess: redis-cli ${args.join(' ')} failed (${res.why}):\n${res.output}`);

    await this.waitUntil(this.readyTimeoutMs, 'the cluster to be ok on every node', async () => {
      const views = await Promise.all(this.procs.map((p) => this.view(p.port)));
      const why = checkViews(this.procs, views);
      if (why) return why;
      const masters = views[0]!.masters;
      if (masters.length !== this.masterCount) return `${masters.length} masters, expected ${this.masterCount}`;
      for (let i = 0; i < views.length; i++) {
        for (const m of views[i]!.masters) {
          if (m.replicas.length < this.replicasPerMaster) return `node ${this.procs[i]!.port} lists ${m.replicas.length} replicas of ${m.port}`;
        }
        if (views[i]!.replicaLinkUp === false) return `replica ${this.procs[i]!.port} has no link to its master yet`;
      }
      return undefined;
    });
  }

  private spawnNode(port: number, busPort: number): void {
    const dir = mkdtempSync(join(tmpdir(), 'inferq-redis-cluster-'));
    const args = [
      '--port', String(port),
      '--cluster-port', String(busPort),
      '--bind', '127.0.0.1',
      '--protected-mode', 'no',
      '--cluster-enabled', 'yes',
      '--cluster-config-file', 'nodes.conf',
      '--cluster-node-timeout', String(this.nodeTimeoutMs),
      '--cluster-replica-validity-factor', '0',
      // A new replica syncs at once instead of after the default 5 s wait for more replicas;
      // CLUSTER SLOTS (7.0) lists a replica only after its first sync.
      '--repl-diskless-sync-delay', '0',
      // An idle master's replication offset moves only with these pings, and
      // CLUSTER SLOTS (what cluster clients read) lists a replica only once
      // its offset is non-zero: 1 s instead of 10 s.
      '--repl-ping-replica-period', '1',
      '--appendonly', 'no',
      '--save', '',
      '--dir', dir,
      '--daemonize', 'no',
      '--logfile', join(dir, 'redis.log'),
    ];
    const child = spawn(this.binary, args, { stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
    // pid is undefined only when the spawn failed; waitPing then reports it.
    this.procs.push({ port, busPort, dir, child, pid: child.pid ?? -1, exited });
  }

  private async waitPing(p: NodeProcess, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!isRunning(p.child)) {
        throw new Error(`RedisClusterProcess: redis-server on port ${p.port} exited early (code ${p.child.exitCode}, signal ${p.child.signalCode}); ${p.dir}/redis.log:\n${logTail(p.dir)}`);
      }
      try {
        if ((await withNode(p.port, (r) => r.ping())) === 'PONG') return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`RedisClusterProcess: redis-server on port ${p.port} did not answer PING within ${timeoutMs} ms; log:\n${logTail(p.dir)}`);
      await sleep(25);
    }
  }

  private pidOf = (port: number): number | undefined => this.procs.find((p) => p.port === port)?.pid;

  private async view(port: number): Promise<NodeView> {
    return withNode(port, async (r) => {
      const info = String(await r.call('CLUSTER', 'INFO'));
      const state = /cluster_state:(\w+)/.exec(info)?.[1] ?? 'unknown';
      const slots = parseSlots(await r.call('CLUSTER', 'SLOTS'), this.pidOf);
      const replicas = parseReplicas(String(await r.call('CLUSTER', 'NODES')));
      for (const m of slots.masters) m.replicas = replicas.get(m.nodeId) ?? [];
      const repl = String(await r.info('replication'));
      const role = /role:(\w+)/.exec(repl)?.[1];
      const replicaLinkUp = role === 'slave' ? /master_link_status:up/.test(repl) : undefined;
      return { state, ...slots, replicaLinkUp };
    });
  }

  /** Polls `check` (undefined = done, else why not yet) until done or `timeoutMs`; the error says the last reason. */
  private async waitUntil(timeoutMs: number, what: string, check: () => Promise<string | undefined>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let why = 'not checked';
    for (;;) {
      try {
        const r = await check();
        if (r === undefined) return;
        why = r;
      } catch (err) {
        why = err instanceof Error ? err.message : String(err);
      }
      if (Date.now() > deadline) throw new Error(`RedisClusterProcess: timed out after ${timeoutMs} ms waiting for ${what}; last: ${why}`);
      await sleep(100);
    }
  }
}

/** Undefined when every node reports cluster_state:ok, all slots covered, and the same owners. */
function checkViews(procs: NodeProcess[], views: NodeView[]): string | undefined {
  for (let i = 0; i < views.length; i++) {
    const v = views[i]!;
    const port = procs[i]!.port;
    if (v.state !== 'ok') return `node ${port}: cluster_state:${v.state}`;
    if (v.covered !== CLUSTER_SLOTS) return `node ${port}: CLUSTER SLOTS covers ${v.covered} of ${CLUSTER_SLOTS} slots`;
    if (v.owners !== views[0]!.owners) return `node ${port} and node ${procs[0]!.port} disagree on slot owners`;
  }
  return undefined;
}

function isRunning(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

async function terminate(p: NodeProcess, graceMs: number): Promise<void> {
  if (!isRunning(p.child)) return;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  await Promise.race([p.exited, sleep(graceMs + 5000)]);
  clearTimeout(timer);
}

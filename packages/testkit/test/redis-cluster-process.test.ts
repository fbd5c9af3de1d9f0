import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisClusterProcess, clusterSupport, keySlot, type RedisClusterMaster } from '@inferq/testkit';

const support = clusterSupport();
const CLUSTER_SOURCE = fileURLToPath(new URL('../src/redis-cluster-process.ts', import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function isRedisServer(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('redis-server');
  } catch {
    return false;
  }
}

/** One hash-tagged key per master: `{tN}:k` for the first N whose slot each master serves. */
function keyPerMaster(masters: RedisClusterMaster[]): Map<number, string> {
  const keys = new Map<number, string>();
  for (let n = 0; keys.size < masters.length && n < 100_000; n++) {
    const key = `{t${n}}:k`;
    const slot = keySlot(key);
    const m = masters.find((x) => x.slots.some(([a, b]) => slot >= a && slot <= b));
    if (m && !keys.has(m.port)) keys.set(m.port, key);
  }
  return keys;
}

describe.skipIf(!support.ok)(`local Redis Cluster helper${support.ok ? '' : ` (skipped: ${support.reason})`}`, () => {
  let cluster: RedisClusterProcess;
  let client: Cluster;

  beforeAll(async () => {
    cluster = await RedisClusterProcess.start({ masters: 3, replicasPerMaster: 1 });
    client = new Cluster(cluster.startupNodes, { redisOptions: { connectTimeout: 2000 } });
  }, 60_000);

  afterAll(async () => {
    client?.disconnect();
    await cluster?.stop();
  }, 60_000);

  it('starts 3 masters with a replica each, every slot served', async () => {
    expect(cluster.nodes).toHaveLength(6);
    expect(cluster.startupNodes).toEqual(cluster.nodes.map((n) => `redis://127.0.0.1:${n.port}`));
    const masters = await cluster.masters();
    expect(masters).toHaveLength(3);
    expect(masters.reduce((s, m) => s + m.slots.reduce((t, [a, b]) => t + b - a + 1, 0), 0)).toBe(16384);
    for (const m of masters) {
      expect(m.replicas).toHaveLength(1);
      expect(cluster.nodes.some((n) => n.port === m.port && n.pid === m.pid)).toBe(true);
    }
  });

  it('an ioredis Cluster from startupNodes sets and gets keys on each of the 3 masters', async () => {
    const keys = keyPerMaster(await cluster.masters());
    expect(keys.size).toBe(3);
    const owners = new Set<number>();
    for (const [port, key] of keys) {
      const m = await cluster.masterForKey(key);
      expect(m.port).toBe(port);
      owners.add(m.port);
      await client.set(key, `v-${port}`);
      expect(await client.get(key)).toBe(`v-${port}`);
      // the key really is on that master
      const direct = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0 });
      try {
        await direct.connect();
        expect(await direct.get(key)).toBe(`v-${port}`);
      } finally {
        direct.disconnect();
      }
    }
    expect(owners.size).toBe(3);
  });

  it('killMaster promotes the replica; a key written before the kill is read back through the Cluster client', async () => {
    const before = await cluster.masters();
    const victim = before[1]!;
    const [replica] = victim.replicas;
    const key = keyPerMaster(before).get(victim.port)!;
    expect((await cluster.masterForKey(key)).port).toBe(victim.port);

    // Write on the master and wait for its replica to acknowledge (replication is async).
    const direct = new Redis({ host: '127.0.0.1', port: victim.port, lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await direct.connect();
      await direct.set(key, 'survives-failover');
      expect(await direct.call('WAIT', '1', '1000')).toBe(1);
    } finally {
      direct.disconnect();
    }

    const newPort = await cluster.killMaster(victim.port);
    expect(newPort).toBe(replica);
    expect(alive(victim.pid!)).toBe(false);
    expect(cluster.nodes.find((n) => n.port === victim.port)?.running).toBe(false);
    expect(cluster.startupNodes).not.toContain(`redis://127.0.0.1:${victim.port}`);

    const after = await cluster.masters();
    expect(after.map((m) => m.port)).not.toContain(victim.port);
    expect(after.find((m) => m.port === newPort)?.slots).toEqual(victim.slots);
    expect((await cluster.masterForKey(key)).port).toBe(newPort);

    expect(await client.get(key)).toBe('survives-failover');
    await client.set(key, 'written-after');
    expect(await client.get(key)).toBe('written-after');
  });

  it('stop ends every redis-server process and is idempotent', async () => {
    const pids = cluster.nodes.map((n) => n.pid);
    client.disconnect();
    await cluster.stop();
    await cluster.stop();
    for (const pid of pids) expect(alive(pid), `pid ${pid}`).toBe(false);
    expect(cluster.nodes.every((n) => !n.running)).toBe(true);
  });

  it("a process that exits without stop() takes its cluster's servers with it", async () => {
    const script = [
      `import { RedisClusterProcess } from ${JSON.stringify(CLUSTER_SOURCE)};`,
      `const c = await RedisClusterProcess.start({ masters: 3, replicasPerMaster: 0 });`,
      `console.log(JSON.stringify(c.nodes.map((n) => n.pid)));`,
      `process.exit(0);`,
    ].join('\n');
    const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    clearTimeout(timer);
    expect(code, err).toBe(0);
    const pids = JSON.parse(out.trim()) as number[];
    expect(pids).toHaveLength(3);
    // SIGKILLed in the child's 'exit' hook; give the kernel a moment to reap them (init adopts them).
    const deadline = Date.now() + 5000;
    while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const left = pids.filter(alive);
    for (const pid of left) if (isRedisServer(pid)) process.kill(pid, 'SIGKILL'); // never leave servers behind, even on failure
    expect(left).toEqual([]);
  }, 60_000);
});

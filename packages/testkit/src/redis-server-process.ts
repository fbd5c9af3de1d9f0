/**
 * A `redis-server` child process on a free port, in its own temp directory,
 * that a test can stop, kill (SIGKILL, by pid) and restart on the same port
 * and data directory. AOF is on by default so a restart keeps what was
 * acknowledged, as in production (docker-compose.yml runs Redis the same way).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './free-port.js';

export interface RedisServerOptions {
  /** Keep an append-only file so data survives restart. Default true. */
  appendOnly?: boolean;
  /** Path of the redis-server binary. Default: `REDIS_SERVER_BIN` or the one on PATH. */
  binary?: string;
  /** Port; default a free one. */
  port?: number;
  /** AOF fsync policy (`--appendfsync`). Default 'everysec'; 'always' keeps every acknowledged write through a SIGKILL. */
  appendFsync?: 'always' | 'everysec';
}

export function findRedisServerBinary(): string | undefined {
  const candidates = [process.env.REDIS_SERVER_BIN, 'redis-server', '/usr/bin/redis-server', '/usr/local/bin/redis-server'];
  for (const c of candidates) {
    if (!c) continue;
    const r = spawnSync(c, ['--version'], { stdio: 'ignore', timeout: 5000 });
    if (r.status === 0) return c;
  }
  return undefined;
}

export class RedisServerProcess {
  readonly dir: string;
  port = 0;
  private child: ChildProcess | undefined;
  private readonly binary: string;
  private readonly appendOnly: boolean;
  private readonly appendFsync: 'always' | 'everysec';

  private constructor(binary: string, appendOnly: boolean, port: number, appendFsync: 'always' | 'everysec' = 'everysec') {
    this.binary = binary;
    this.appendOnly = appendOnly;
    this.appendFsync = appendFsync;
    this.port = port;
    this.dir = mkdtempSync(join(tmpdir(), 'inferq-redis-'));
  }

  static async start(options: RedisServerOptions = {}): Promise<RedisServerProcess> {
    const binary = options.binary ?? findRedisServerBinary();
    if (!binary) throw new Error('redis-server was not found on PATH (set REDIS_SERVER_BIN or install redis-server).');
    const server = new RedisServerProcess(binary, options.appendOnly ?? true, options.port ?? (await freePort()), options.appendFsync);
    try {
      await server.launch();
    } catch (err) {
      await server.destroy(); // a server that never became ready must not outlive the failed start
      throw err;
    }
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  private async launch(): Promise<void> {
    const args = [
      '--port', String(this.port),
      '--bind', '127.0.0.1',
      '--dir', this.dir,
      '--save', '',
      '--appendonly', this.appendOnly ? 'yes' : 'no',
      '--appendfsync', this.appendFsync,
      '--maxmemory-policy', 'noeviction',
      '--daemonize', 'no',
      '--logfile', join(this.dir, 'redis.log'),
    ];
    const child = spawn(this.binary, args, { stdio: 'ignore' });
    this.child = child;
    const exited = new Promise<never>((_, reject) =>
      child.once('exit', (code, signal) => reject(new Error(`redis-server exited early (code ${code}, signal ${signal}); see ${this.dir}/redis.log`))),
    );
    exited.catch(() => undefined);
    await Promise.race([this.waitReady(10_000), exited]);
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const probe = new Redis({ host: '127.0.0.1', port: this.port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        if ((await probe.ping()) === 'PONG') return;
      } catch {
        // not up yet (or still loading the AOF)
      } finally {
        probe.disconnect();
      }
      if (Date.now() > deadline) throw new Error(`redis-server on port ${this.port} not ready after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Graceful stop (SIGTERM; Redis flushes the AOF). */
  async stop(): Promise<void> {
    await this.signal('SIGTERM');
  }

  /** Hard crash (SIGKILL). */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /** Freezes the server (SIGSTOP): connections stay open and nothing is answered, as with a hung host. */
  pause(): void {
    if (this.running) this.child?.kill('SIGSTOP');
  }

  /** Thaws a paused server (SIGCONT). */
  resume(): void {
    if (this.running) this.child?.kill('SIGCONT');
  }

  /** Starts again on the same port and data directory. */
  async restart(): Promise<void> {
    if (this.running) await this.stop();
    await this.launch();
  }

  /** Stops the server and removes its directory. */
  async destroy(): Promise<void> {
    this.resume();
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async signal(sig: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(sig);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await done;
    clearTimeout(timer);
  }
}

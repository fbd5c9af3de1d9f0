/**
 * TLS: a worker and a client talk to a `redis-server --tls-port` through
 * `rediss://` with the test's CA and answer requests end to end; with a CA
 * they do not trust, start-up fails at once with a typed error that says it
 * is the certificate (not a hang, not an INFERQ_TIMEOUT). Certificates are
 * made here with openssl. Skipped, saying why, where redis-server or openssl
 * cannot do TLS.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, type InferqError } from '@inferq/core';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { findRedisServerBinary, freePort } from '@inferq/testkit';

const dir = mkdtempSync(join(tmpdir(), 'inferq-tls-'));
let server: ChildProcess | undefined;
let port = 0;
let why = '';

function sh(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { cwd: dir, stdio: 'ignore', timeout: 20_000 }).status === 0;
}

beforeAll(async () => {
  const bin = findRedisServerBinary();
  if (!bin) return void (why = 'no redis-server binary');
  const certs =
    sh('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=inferq-test-ca']) &&
    sh('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'other.key', '-out', 'other.crt', '-days', '2', '-subj', '/CN=someone-else']) &&
    sh('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']) &&
    (writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n'), true) &&
    sh('openssl', ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf']);
  if (!certs) return void (why = 'openssl could not make test certificates');
  port = await freePort();
  server = spawn(bin, ['--port', '0', '--tls-port', String(port), '--tls-cert-file', 'server.crt', '--tls-key-file', 'server.key', '--tls-ca-cert-file', 'ca.crt', '--tls-auth-clients', 'no', '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  server.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  for (let i = 0; i < 100 && !out.includes('Ready to accept') && server.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
  if (!out.includes('Ready to accept')) {
    why = `redis-server did not start with TLS (built without it?): ${out.slice(-300)}`;
    server.kill('SIGKILL');
    server = undefined;
  }
}, 60_000);

afterAll(() => {
  if (server?.pid) process.kill(server.pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('TLS', () => {
  it('rediss:// with the CA: a worker and a client answer end to end', async (ctx) => {
    if (!server) return ctx.skip(`TLS test skipped: ${why}`);
    const redis = { host: '127.0.0.1', port, tls: { ca: readFileSync(join(dir, 'ca.crt')) } };
    const worker = new InferenceWorker<{ x: number }, { y: number }>({ redis, model: 'tls', config: { batchTimeoutMs: 5 }, run: async (xs) => xs.map((x) => ({ y: x.x * 3 })) });
    await worker.start();
    const client = new InferenceClient<{ x: number }, { y: number }>({ redis, model: 'tls' });
    try {
      const rs = await Promise.all([client.infer({ x: 1 }), client.infer({ x: 2 }, { useCache: false })]);
      expect(rs.map((r) => r.output.y)).toEqual([3, 6]);
    } finally {
      await client.close();
      await worker.stop();
    }
  });

  it('a CA that does not sign the server: a typed error naming TLS, at once', async (ctx) => {
    if (!server) return ctx.skip(`TLS test skipped: ${why}`);
    const redis = { host: '127.0.0.1', port, tls: { ca: readFileSync(join(dir, 'other.crt')) } };
    const worker = new InferenceWorker({ redis, model: 'tls', run: async (xs: unknown[]) => xs, connectTimeoutMs: 10_000 });
    const t0 = Date.now();
    const err = (await worker.start().then(() => undefined, (e: unknown) => e)) as InferqError;
    expect(err.code).toBe(ErrorCode.REDIS_UNAVAILABLE);
    expect(err.details.reason).toBe('tls');
    expect(err.message).toMatch(/certificate/i);
    expect(Date.now() - t0).toBeLessThan(5000);
    const client = new InferenceClient({ redis, model: 'tls' });
    const e = (await client.infer({ x: 1 }, { timeoutMs: 20_000 }).catch((x: unknown) => x)) as InferqError;
    expect(e.code).toBe(ErrorCode.REDIS_UNAVAILABLE);
    expect(e.message).toMatch(/certificate/i);
    await client.close();
  });
});

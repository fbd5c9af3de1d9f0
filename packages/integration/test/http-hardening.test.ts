/**
 * The HTTP servers of `inferq metrics` and `inferq dashboard`, hardened
 * (docs/http-endpoints.md), over real HTTP on 127.0.0.1 against a real Redis:
 * - a Host header that does not name the server gets 421 (DNS rebinding);
 * - with a token, a request without the right `Authorization: Bearer` gets
 *   401; the dashboard trades `/?token=` for a session cookie;
 * - beyond loopback without a token the server refuses to start, unless
 *   `--insecure-no-auth`;
 * - the dashboard's event streams are capped (503 past `maxSubscribers`), and
 *   a reader that stops reading is dropped rather than buffered for.
 * The worker's `--metrics-port` is covered in worker-health.test.ts.
 */
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_CLI, spawnNode, startTestRedis, type SpawnedProcess, type TestRedis } from '@inferq/testkit';
import { ModelReader } from '../../client/src/model-snapshot.js';
import { serveDashboard, type RunningServer } from '../../client/src/monitor-server.js';
import { SseBroadcaster, type SseLimits } from '../../client/src/sse-broadcaster.js';
import { createLogger } from '@inferq/core';

let redis: TestRedis;
const processes: SpawnedProcess[] = [];
const closers: Array<() => Promise<unknown>> = [];
const TOKEN = 's3cret-token-for-tests';

beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  for (const p of processes) await p.stop(5000);
  await redis.cleanup();
});

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One GET with the headers given (node:http, so that Host can be anything), body read in full. */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer within 5 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** Opens an event stream and resolves at its status line, leaving the stream open (`close()` ends it). */
function openStream(port: number, headers: Record<string, string> = {}): Promise<{ status: number; res: IncomingMessage; close(): void }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/events', headers, timeout: 5000 }, (res) => {
      req.setTimeout(0);
      res.resume();
      resolve({ status: res.statusCode ?? 0, res, close: () => req.destroy() });
    });
    req.on('timeout', () => req.destroy(new Error('GET /events: no answer within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

async function startCli(command: 'metrics' | 'dashboard', args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ cli: SpawnedProcess; port: number }> {
  const cli = spawnNode(CLIENT_CLI, [command, '--model', 'hard', '--port', '0', '--redis', redis.url, '--prefix', redis.prefix, ...args], env);
  processes.push(cli);
  const line = await cli.waitForLine(/^(METRICS|DASHBOARD) /, 30_000);
  return { cli, port: Number(/:(\d+)\//.exec(line)?.[1]) };
}

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

describe('Host header check', () => {
  it('answers 421 to a Host that does not name the server; loopback names and --allow-host names pass', async () => {
    const { port } = await startCli('metrics', ['--allow-host', 'metrics.internal', '--allow-host', 'Other.Example.']);
    expect((await get(port, '/metrics', { host: `evil.example:${port}` })).status).toBe(421);
    // A name that resolves to 127.0.0.1 is still not ours: that is the rebinding attack.
    expect((await get(port, '/metrics', { host: `127.0.0.1.nip.io:${port}` })).status).toBe(421);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, 'localhost', `metrics.internal:${port}`, 'other.example']) {
      expect((await get(port, '/metrics', { host })).status, host).toBe(200);
    }
  });

  it('on a wildcard bind (with --insecure-no-auth) accepts IP literals, still refuses names, and warns on stderr', async () => {
    const { cli, port } = await startCli('metrics', ['--host', '0.0.0.0', '--insecure-no-auth'], { INFERQ_LOG_LEVEL: 'warn' });
    expect((await get(port, '/metrics', { host: `10.1.2.3:${port}` })).status).toBe(200);
    expect((await get(port, '/metrics', { host: `127.0.0.1:${port}` })).status).toBe(200);
    expect((await get(port, '/metrics', { host: `evil.example:${port}` })).status).toBe(421);
    expect(cli.stderr()).toMatch(/WITHOUT authentication/);
  });
});

describe('bearer token', () => {
  it('without a token, a bind beyond loopback is refused, naming the options to give', async () => {
    const cli = spawnNode(CLIENT_CLI, ['metrics', '--model', 'hard', '--port', '0', '--host', '0.0.0.0', '--redis', redis.url, '--prefix', redis.prefix]);
    processes.push(cli);
    expect((await cli.exited).code).toBe(1);
    expect(cli.stderr()).toMatch(/--auth-token.*is required to serve on '0\.0\.0\.0'.*--insecure-no-auth/s);
  });

  it('inferq metrics (INFERQ_HTTP_TOKEN): 401 without the token or with a wrong one, 200 with it', async () => {
    const { port } = await startCli('metrics', [], { INFERQ_HTTP_TOKEN: TOKEN });
    const missing = await get(port, '/metrics');
    expect(missing.status).toBe(401);
    expect(missing.headers['www-authenticate']).toMatch(/^Bearer/);
    expect((await get(port, '/metrics', bearer('wrong'))).status).toBe(401);
    expect((await get(port, '/metrics', bearer(`${TOKEN}x`))).status).toBe(401);
    expect((await get(port, '/metrics', { authorization: `Basic ${TOKEN}` })).status).toBe(401);
    const ok = await get(port, '/metrics', bearer(TOKEN));
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('inferq_requests_total');
    // The Host check comes first, token or not.
    expect((await get(port, '/metrics', { ...bearer(TOKEN), host: 'evil.example' })).status).toBe(421);
  });

  it('inferq dashboard (--auth-token): /?token= sets a session cookie the page and its event stream use', async () => {
    const { port } = await startCli('dashboard', ['--auth-token', TOKEN]);
    expect((await get(port, '/')).status).toBe(401);
    expect((await get(port, '/snapshot.json')).status).toBe(401);
    expect((await openStream(port)).status).toBe(401);
    expect((await get(port, '/?token=wrong')).status).toBe(401);
    const login = await get(port, `/?token=${TOKEN}`);
    expect(login.status).toBe(303);
    expect(login.headers.location).toBe('./');
    const cookie = String(login.headers['set-cookie']?.[0] ?? '');
    expect(cookie).toMatch(new RegExp(`^inferq_dashboard_${port}=[^;]+; Path=/; HttpOnly; SameSite=Strict$`));
    // The cookie carries a value derived from the token, never the token.
    expect(cookie).not.toContain(TOKEN);
    const session = { cookie: cookie.split(';')[0]! };
    expect((await get(port, '/', session)).body).toContain('<html');
    const stream = await openStream(port, session);
    expect(stream.status).toBe(200);
    stream.close();
    expect((await get(port, '/', { cookie: `inferq_dashboard_${port}=forged` })).status).toBe(401);
    // The header works as well (what a script would send).
    expect((await get(port, '/', bearer(TOKEN))).status).toBe(200);
  });
});

describe('dashboard event streams', () => {
  async function dashboard(o: Parameters<typeof serveDashboard>[1]): Promise<RunningServer> {
    const conn = redis.connect();
    const reader = new ModelReader(conn, 'hard', redis.prefix);
    const server = await serveDashboard(reader, o);
    closers.push(async () => {
      await server.close();
      await reader.close();
    });
    return server;
  }

  it('answers 503 past maxSubscribers, and takes a new stream once one closes', async () => {
    const { port } = await dashboard({ port: 0, maxSubscribers: 2 });
    const a = await openStream(port);
    const b = await openStream(port);
    expect([a.status, b.status]).toEqual([200, 200]);
    const refused = await get(port, '/events');
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBeDefined();
    a.close();
    const deadline = Date.now() + 5000;
    let again = await openStream(port);
    while (again.status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      again = await openStream(port);
    }
    expect(again.status).toBe(200);
    b.close();
    again.close();
  });

});

describe('SseBroadcaster back-pressure (real sockets)', () => {
  // The dashboard's events are ~1 KB a second: the kernel's loopback buffers (MBs) would take
  // minutes to fill. Here the broadcaster behind a plain node:http server sends 64 KiB events
  // every 10 ms, so a reader that pauses its socket fills them in about a second.
  const EVENT = `data: ${'x'.repeat(64 * 1024)}\n\n`;

  async function streamServer(limits: SseLimits): Promise<{ port: number; streams: SseBroadcaster }> {
    const streams = new SseBroadcaster(limits, createLogger('test-sse'));
    const server = createServer((req, res) => void streams.subscribe(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const timer = setInterval(() => streams.broadcast(EVENT), 10);
    closers.push(async () => {
      clearInterval(timer);
      streams.closeAll();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    });
    return { port: (server.address() as AddressInfo).port, streams };
  }

  /** A raw client that reads the response head, then pauses its socket for good. */
  async function pausedReader(port: number): Promise<Socket> {
    const slow = connect(port, '127.0.0.1');
    closers.push(async () => void slow.destroy());
    let head = '';
    await new Promise<void>((resolve, reject) => {
      slow.on('error', reject);
      slow.on('data', (d: Buffer) => {
        head += d.toString('latin1');
        if (head.includes('\r\n\r\n')) {
          slow.pause();
          resolve();
        }
      });
      slow.write(`GET /events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    });
    expect(head).toMatch(/^HTTP\/1\.1 200/);
    return slow;
  }

  async function until(ok: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!ok() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    return ok();
  }

  it('drops a paused reader when no drain comes within drainTimeoutMs, and keeps a reading one', async () => {
    const { port, streams } = await streamServer({ maxBufferedBytes: 1 << 30, drainTimeoutMs: 300 });
    let received = 0;
    const reading = await openStream(port);
    reading.res.on('data', (d: Buffer) => (received += d.length));
    await pausedReader(port);
    expect(streams.size).toBe(2);
    expect(await until(() => streams.size === 1, 20_000)).toBe(true);
    // The one still there is the reader that reads: it keeps receiving.
    const before = received;
    expect(await until(() => received > before + 10 * EVENT.length, 10_000)).toBe(true);
    reading.close();
  }, 40_000);

  it('drops a paused reader once more than maxBufferedBytes wait unsent', async () => {
    const { port, streams } = await streamServer({ maxBufferedBytes: 256 * 1024, drainTimeoutMs: 600_000 });
    await pausedReader(port);
    expect(streams.size).toBe(1);
    expect(await until(() => streams.size === 0, 20_000)).toBe(true);
  }, 40_000);
});

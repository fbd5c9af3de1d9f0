/**
 * The HTTP servers of `inferq metrics` and `inferq dashboard` (node:http, no
 * framework), both reading a model's shared numbers through `ModelReader`:
 *
 * - metrics: `GET /metrics`, the Prometheus text exposition, read from Redis
 *   at each scrape (503 with the reason when Redis cannot be read);
 * - dashboard: `GET /` one HTML page (inline CSS and JS, no build step),
 *   `GET /events` server-sent events, one `DashboardEvent` (JSON) a second,
 *   and `GET /snapshot.json` the latest event.
 *
 * Every request passes `HttpAccess` first (Host header, bearer token; see
 * core/http-access.ts and docs/http-endpoints.md). With a token, the
 * dashboard's page may be opened once as `/?token=<token>`: it answers with a
 * session cookie and a redirect to `/`, so the token leaves the address bar
 * and the page's EventSource (which cannot send headers) is let in by the
 * cookie.
 *
 * Rates, latency percentiles, batch size and hit rate of an event are over
 * the last `DASHBOARD_WINDOW_S` seconds (differences of the shared counters
 * and histogram); the `All` fields are since the last stats reset, and so are
 * the per-tenant counts (`tenants`, the snapshot's rows as they are).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpAccess, LatencyHistogram, LATENCY_BUCKET_BOUNDS_MS, createLogger, throttledLog, type HttpAccessOptions, type Logger, type TenantStats } from '@inferq/core';
import { dashboardPage } from './dashboard-page.js';
import { PROMETHEUS_CONTENT_TYPE, formatPrometheus, type ModelReader, type ModelSnapshot, type QueueState, type SeenWorker } from './model-snapshot.js';
import { SseBroadcaster, type SseLimits } from './sse-broadcaster.js';

export interface ServeOptions {
  port: number;
  /** Default `127.0.0.1`. */
  host?: string;
  /** Host check and bearer token (docs/http-endpoints.md). Default: loopback names only, no token. */
  access?: HttpAccessOptions;
  logger?: Logger;
}

export interface RunningServer {
  /** The page or metrics URL. */
  url: string;
  port: number;
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, path: string, access: HttpAccess) => void;

/** Throws ConfigError (before listening) when the access options are refused, e.g. beyond loopback without a token. */
async function listen(handler: Handler, o: ServeOptions, path: string, component: string, logger: Logger): Promise<{ server: Server; port: number; url: string }> {
  const host = o.host ?? '127.0.0.1';
  const access = new HttpAccess(host, o.access ?? {}, component, logger);
  const server = createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    handler(req, res, new URL(req.url ?? '/', 'http://x').pathname, access);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return { server, port, url: `http://${host.includes(':') ? `[${host}]` : host}:${port}${path}` };
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, 1000);
    server.close(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

const text = (res: ServerResponse, status: number, body: string) => res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(body);

/** `inferq metrics`: the model's shared stats at `/metrics`, read at each scrape. */
export async function serveMetrics(reader: ModelReader, o: ServeOptions): Promise<RunningServer> {
  const logger = createLogger('metrics', o.logger).child({ model: reader.model });
  const logReadError = throttledLog(logger, 'warn');
  const { server, port, url } = await listen(
    (req, res, path, access) => {
      if (!access.admit(req, res)) return;
      if (path === '/') return text(res, 200, `inferq shared metrics of model '${reader.model}': GET /metrics\n`);
      if (path !== '/metrics') return text(res, 404, 'not found\n');
      reader.snapshot().then(
        (s) => res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE }).end(formatPrometheus(s)),
        (err: unknown) => {
          logReadError({ err }, 'a scrape could not read the model in Redis; answered 503');
          text(res, 503, `${(err as Error).message}\n`);
        },
      );
    },
    o,
    '/metrics',
    'inferq metrics',
    logger,
  );
  return { url, port, close: () => closeServer(server) };
}

/** Seconds the dashboard's rates and percentiles cover. */
export const DASHBOARD_WINDOW_S = 5;

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
}

/** One event of the dashboard feed. Numbers the window cannot give (no traffic in it) are null. */
export interface DashboardEvent {
  model: string;
  at: number;
  /** False when Redis could not be read this second: `error` says why, the rest is absent. */
  ok: boolean;
  error?: string;
  /** Seconds the window actually covers (shorter right after start or a stats reset). */
  windowSeconds?: number;
  queue?: Record<QueueState, number> | null;
  queueError?: string;
  /** Requests per second made by callers, over the window. */
  throughput?: number;
  /** Inputs computed per second, model calls per second, failed requests per second. */
  itemsPerSecond?: number;
  batchesPerSecond?: number;
  errorsPerSecond?: number;
  latencyMs?: Percentiles | null;
  latencyAllMs?: Percentiles;
  avgBatchSize?: number | null;
  avgBatchSizeAll?: number;
  cacheHitRate?: number | null;
  cacheHitRateAll?: number;
  totals?: { requests: number; batches: number; items: number; cacheHits: number; singleFlightJoins: number; batchCacheHits: number; errors: number; timeouts: number };
  cache?: { entries: number; bytes: number };
  /** Workers connected to the queue (BullMQ getWorkers, i.e. CLIENT LIST); null when Redis refused it (`workersError`). */
  workers?: SeenWorker[] | null;
  workersError?: string;
  /** Live client processes (heartbeat keys). */
  clients?: number | null;
  /**
   * Per-tenant figures as `inferq stats --by-tenant` shows them: counts and
   * percentiles since the last stats reset, places held, share, weight and
   * caps now. At most 50 rows, most requests first, the rest summed in a row
   * named `other`; empty before any tenant was counted. Tenant names are
   * chosen by callers: the page shows them as text, never as markup.
   */
  tenants?: TenantStats[];
}

/** Turns one snapshot a second into dashboard events; keeps the window's snapshots. */
export class DashboardFeed {
  private readonly history: ModelSnapshot[] = [];

  constructor(private readonly windowSeconds = DASHBOARD_WINDOW_S) {}

  next(s: ModelSnapshot, extra: Pick<DashboardEvent, 'workers' | 'workersError' | 'clients'>): DashboardEvent {
    const prev = this.history[this.history.length - 1];
    // A stats reset makes counters go down: start the window again.
    if (prev && (s.counters.requests ?? 0) < (prev.counters.requests ?? 0)) this.history.length = 0;
    this.history.push(s);
    while (this.history.length > 1 && s.at - this.history[0]!.at > this.windowSeconds * 1000 + 500) this.history.shift();
    const base = this.history[0]!;
    const dt = (s.at - base.at) / 1000;
    const d = (field: string) => Math.max(0, (s.counters[field] ?? 0) - (base.counters[field] ?? 0));
    const rate = (field: string) => (dt > 0 ? d(field) / dt : 0);
    const windowHist = LatencyHistogram.fromFields(
      Object.fromEntries(
        LATENCY_BUCKET_BOUNDS_MS.map((b, i) => [b === Infinity ? 'le_inf' : `le_${b}`, Math.max(0, (s.latencyBuckets[i] ?? 0) - (base.latencyBuckets[i] ?? 0))]),
      ),
    );
    const st = s.stats;
    const hits = d('cache_hits');
    const lookups = hits + d('cache_misses');
    const batches = d('batches');
    const event: DashboardEvent = {
      model: s.model,
      at: s.at,
      ok: true,
      windowSeconds: dt,
      queue: s.queue ?? null,
      throughput: rate('requests'),
      itemsPerSecond: rate('batch_items'),
      batchesPerSecond: rate('batches'),
      errorsPerSecond: rate('errors'),
      latencyMs: windowHist.count > 0 ? { p50: windowHist.percentile(50), p95: windowHist.percentile(95), p99: windowHist.percentile(99) } : null,
      latencyAllMs: { p50: st.p50LatencyMs, p95: st.p95LatencyMs, p99: st.p99LatencyMs },
      avgBatchSize: batches > 0 ? d('batch_items') / batches : null,
      avgBatchSizeAll: st.avgBatchSize,
      cacheHitRate: lookups > 0 ? hits / lookups : null,
      cacheHitRateAll: st.cacheHitRate,
      totals: {
        requests: st.totalRequests,
        batches: st.totalBatches,
        items: st.batchItems,
        cacheHits: st.cacheHits,
        singleFlightJoins: st.coalesced,
        batchCacheHits: st.workerCacheHits,
        errors: st.errors,
        timeouts: st.timeouts,
      },
      cache: { entries: s.cacheEntries, bytes: s.cacheBytes },
      tenants: s.tenants,
      ...extra,
    };
    if (s.queueError !== undefined) event.queueError = s.queueError;
    return event;
  }
}

/** `inferq dashboard`: the page, its event stream (one event a second to every open page) and the latest event as JSON. */
export async function serveDashboard(reader: ModelReader, o: ServeOptions & SseLimits & { intervalMs?: number }): Promise<RunningServer> {
  const logger = createLogger('dashboard', o.logger).child({ model: reader.model });
  const feed = new DashboardFeed();
  const streams = new SseBroadcaster({ maxSubscribers: o.maxSubscribers, maxBufferedBytes: o.maxBufferedBytes, drainTimeoutMs: o.drainTimeoutMs }, logger);
  let last: DashboardEvent | undefined;
  let ticking = false;
  const page = dashboardPage(reader.model);
  // Cookies are shared by every port of a host: one name per dashboard, set once the port is known.
  let cookieName = 'inferq_dashboard';

  const tick = async () => {
    if (ticking) return; // a slow Redis: skip a second rather than pile reads up
    ticking = true;
    try {
      let event: DashboardEvent;
      try {
        const [snap, workers, clients] = await Promise.all([
          reader.snapshot(),
          reader.workers().then(
            (w) => ({ workers: w }),
            (err: unknown) => ({ workers: null, workersError: (err as Error).message }),
          ),
          reader.clientCount().catch(() => null),
        ]);
        event = feed.next(snap, { ...workers, clients });
      } catch (err) {
        event = { model: reader.model, at: Date.now(), ok: false, error: (err as Error).message };
      }
      last = event;
      streams.broadcast(`data: ${JSON.stringify(event)}\n\n`);
    } finally {
      ticking = false;
    }
  };

  const { server, port, url } = await listen(
    (req, res, path, access) => {
      const token = path === '/' ? new URL(req.url ?? '/', 'http://x').searchParams.get('token') : null;
      if (token !== null && access.tokenRequired && access.hostAllowed(req.headers.host) && access.tokenMatches(token)) {
        // The page opened with its token: trade it for a cookie, and take it out of the address bar (and history).
        res.writeHead(303, { location: './', 'set-cookie': access.sessionCookie(cookieName) as string, 'cache-control': 'no-store' }).end();
        return;
      }
      if (!access.admit(req, res, { cookieName })) return;
      if (path === '/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(page);
        return;
      }
      if (path === '/snapshot.json') {
        res.writeHead(last ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(last ?? { ok: false, error: 'no data yet' }));
        return;
      }
      if (path !== '/events') return text(res, 404, 'not found\n');
      streams.subscribe(req, res, last ? `data: ${JSON.stringify(last)}\n\n` : undefined);
    },
    o,
    '/',
    'inferq dashboard',
    logger,
  );
  cookieName = `inferq_dashboard_${port}`;
  const timer = setInterval(() => void tick(), o.intervalMs ?? 1000);
  void tick();
  return {
    url,
    port,
    async close() {
      clearInterval(timer);
      streams.closeAll();
      await closeServer(server);
    },
  };
}

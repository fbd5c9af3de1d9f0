/**
 * `inferq dashboard`, over HTTP and in a real browser.
 *
 * - The feed: the server in-process, two tenants' requests made by real
 *   clients; `/snapshot.json` (the latest event) and `/events` carry one row
 *   per tenant with what each asked for and got (requests, refusals at its
 *   cap, timeouts, cache hits), the places it holds, its share, weight and
 *   caps; no rows before any tenant was counted.
 * - The page: headless Chromium (puppeteer-core, Debian's `chromium`) loads
 *   it while a worker serves two tenants' clients that generate load, and the
 *   numbers on the page change as the load goes on; once the load stopped,
 *   the tenant table shows each tenant's exact counts, and a hostile tenant
 *   name written straight into the stats hash shows as text, not markup. The
 *   dashboard runs with a token (INFERQ_HTTP_TOKEN): the browser opens
 *   `/?token=`, is redirected to `/` with a session cookie, and the page's
 *   event stream is let in by that cookie. Skipped, saying why, when no
 *   Chromium binary is found (`pnpm test` installs Debian's chromium when it
 *   runs as root with apt-get).
 *
 * `DASHBOARD_SCREENSHOT=docs/dashboard.png npx vitest run packages/integration/test/dashboard.test.ts`
 * also saves a screenshot of the page under load (after another 20 s,
 * `DASHBOARD_SCREENSHOT_WAIT_MS`), as in docs/metrics.md.
 */
import { describe, expect, it } from 'vitest';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { modelKeys, readTenantStats, type TenantStats } from '@inferq/core';
import { setMaxQueueLength, setTenant } from '@inferq/core/protocol';
import { CLIENT_CLI, HOW_TO_GET_CHROMIUM, findChromiumBinary, spawnNode } from '@inferq/testkit';
import { useTestRedis } from '@inferq/testkit/harness';
import { ModelReader } from '../../client/src/model-snapshot.js';
import { serveDashboard, type DashboardEvent } from '../../client/src/monitor-server.js';

const h = useTestRedis();
const chromium = findChromiumBinary();
if (!chromium) console.warn(`dashboard.test.ts: skipped, ${HOW_TO_GET_CHROMIUM}`);
const title = 'the page shows live numbers that change under load, and each tenant with its counts (headless Chromium)';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `read` until `done` holds of its value (or `ms` passed); returns the last value read. */
async function until<T>(read: () => Promise<T>, done: (v: T) => boolean, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  let v = await read();
  while (!done(v) && Date.now() < deadline) {
    await sleep(100);
    v = await read();
  }
  return v;
}

/** The first event of the dashboard's `/events` stream. */
async function firstStreamEvent(url: string): Promise<DashboardEvent> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 10_000);
  try {
    const res = await fetch(`${url}events`, { signal: abort.signal });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`/events ended before its first event: ${text}`);
      text += new TextDecoder().decode(value);
      // Blocks end with a blank line; the first ones may hold no data (`retry:`).
      const blocks = text.split('\n\n').slice(0, -1);
      const data = blocks.map((b) => b.split('\n').find((l) => l.startsWith('data: '))).find((l) => l !== undefined);
      if (data) return JSON.parse(data.slice('data: '.length)) as DashboardEvent;
    }
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

describe('inferq dashboard feed', () => {
  it('/snapshot.json and /events carry one row per tenant: counts, places held, share, weight, caps; none before any tenant', async () => {
    const prefix = h.redis.newPrefix();
    const model = 'dash-tenants';
    const conn = h.redis.connect();
    const keys = modelKeys(model, prefix);
    const reader = h.after(new ModelReader(conn, model, prefix), (r) => r.close());
    const server = h.after(await serveDashboard(reader, { port: 0, intervalMs: 200 }), (s) => s.close());
    const snapshot = async () => (await (await fetch(`${server.url}snapshot.json`)).json()) as DashboardEvent;
    const rows = (e: DashboardEvent) => Object.fromEntries((e.tenants ?? []).map((t) => [t.tenant, t])) as Record<string, TenantStats>;

    // Nothing counted and nothing configured: no rows.
    const empty = await until(snapshot, (e) => e.ok, 10_000);
    expect(empty.ok, empty.error).toBe(true);
    expect(empty.tenants).toEqual([]);

    // The operator bounds the queue and configures beta: one place at most, twice alpha's weight.
    await setMaxQueueLength(conn, keys, 100);
    await setTenant(conn, keys, 'beta', { weight: 2, maxQueued: 1, maxSlots: 4 });
    const alpha = h.after(new InferenceClient<{ x: number }, { y: number }>({ redis: h.redis.url, model, prefix, tenant: 'alpha' }), (c) => c.close());
    const beta = h.after(new InferenceClient<{ x: number }, { y: number }>({ redis: h.redis.url, model, prefix, tenant: 'beta' }), (c) => c.close());

    // No worker yet: beta's first request takes its one place (seen in the feed before its caller gives up, however slow
    // the client's start) and times out holding it; the next two are refused at its cap.
    const first = beta.infer({ x: 1 }, { timeoutMs: 4000 });
    first.catch(() => undefined); // awaited below
    expect(rows(await until(snapshot, (e) => rows(e).beta?.queued === 1, 10_000)).beta?.queued).toBe(1);
    for (const x of [2, 3]) await expect(beta.infer({ x })).rejects.toMatchObject({ code: 'INFERQ_QUEUE_FULL' });
    await expect(first).rejects.toMatchObject({ code: 'INFERQ_TIMEOUT' });
    const beforeWorker = rows(await until(snapshot, (e) => rows(e).beta?.refused === 2 && rows(e).beta?.timeouts === 1, 10_000));
    expect(beforeWorker.beta).toMatchObject({ requests: 3, refused: 2, timeouts: 1, cacheHits: 0, queued: 1, weight: 2, cap: 1, slotCap: 4, share: 100 });
    expect(Object.keys(beforeWorker)).toEqual(['beta']);

    // A worker answers (and drops beta's expired request, giving its place back); alpha asks twice for each of two inputs.
    const worker = new InferenceWorker<{ x: number }, { y: number }>({
      redis: h.redis.url,
      model,
      prefix,
      config: { maxBatchSize: 8, batchTimeoutMs: 5 },
      run: async (xs) => xs.map(({ x }) => ({ y: x * x })),
    });
    h.after(worker, (w) => w.stop());
    await worker.start();
    for (const x of [10, 11, 10, 11]) expect((await alpha.infer({ x }, { timeoutMs: 10_000 })).output).toEqual({ y: x * x });

    const done = await until(snapshot, (e) => rows(e).alpha?.requests === 4 && rows(e).alpha?.cacheHits === 2 && rows(e).beta?.queued === 0, 10_000);
    // Most requests first.
    expect(done.tenants?.map((t) => t.tenant)).toEqual(['alpha', 'beta']);
    const a = rows(done).alpha!;
    expect(a).toMatchObject({ requests: 4, refused: 0, timeouts: 0, cacheHits: 2, queued: 0, weight: 1, cap: 0, slotCap: 0, share: 100 });
    expect(a.p50LatencyMs).toBeGreaterThan(0);
    expect(a.p99LatencyMs).toBeGreaterThanOrEqual(a.p50LatencyMs);
    expect(rows(done).beta).toMatchObject({ requests: 3, refused: 2, timeouts: 1, queued: 0, weight: 2, cap: 1, slotCap: 4, share: 100 });
    // The same rows as `inferq stats --by-tenant` reads.
    expect(done.tenants).toEqual(await readTenantStats(conn, model, prefix));

    // The event stream carries them too (its first event is the latest one, then one per interval).
    const streamed = await firstStreamEvent(server.url);
    expect(streamed.tenants?.map((t) => [t.tenant, t.requests, t.refused, t.timeouts, t.cacheHits])).toEqual([
      ['alpha', 4, 0, 0, 2],
      ['beta', 3, 2, 1, 0],
    ]);
  }, 60_000);
});

describe('inferq dashboard in a browser', () => {
  (chromium ? it : it.skip)(chromium ? title : `${title} [skipped: ${HOW_TO_GET_CHROMIUM}]`, async () => {
    const redis = h.redis;
    const model = 'dash';
    const prefix = redis.prefix;
    const conn = redis.connect();
    const worker = new InferenceWorker<{ x: number }, { y: number }>({
      redis: redis.url,
      model,
      prefix,
      workerId: 'dash-worker-1',
      config: { maxBatchSize: 16, batchTimeoutMs: 5, numWorkers: 2 },
      run: async (xs) => {
        await sleep(2 + Math.random() * 6);
        return xs.map(({ x }) => ({ y: x * x }));
      },
    });
    h.after(worker, (w) => w.stop());
    await worker.start();
    // Two tenants: alpha with three request loops, beta with one.
    const tenants = ['alpha', 'beta'] as const;
    const clients = Object.fromEntries(
      tenants.map((tenant) => [tenant, h.after(new InferenceClient<{ x: number }, { y: number }>({ redis: redis.url, model, prefix, tenant }), (c) => c.close())]),
    ) as Record<(typeof tenants)[number], InferenceClient<{ x: number }, { y: number }>>;

    // The dashboard and the browser start before the load, which keeps both cores busy; the page opens before any tenant is counted.
    const token = 'browser-test-token';
    const dashboard = h.after(spawnNode(CLIENT_CLI, ['dashboard', '--model', model, '--port', '0', '--redis', redis.url, '--prefix', prefix], { INFERQ_HTTP_TOKEN: token }), (p) => p.stop(5000));
    const launching = puppeteer.launch({
      executablePath: chromium as string,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
      timeout: 30_000,
    });
    // Closed whatever happens, even when the test fails before it awaits the launch.
    h.defer(async () => {
      const browser = await launching.catch(() => undefined);
      if (!browser) return;
      const pid = browser.process()?.pid;
      await Promise.race([browser.close(), sleep(5000)]).catch(() => undefined);
      if (pid !== undefined && browser.process()?.exitCode === null) process.kill(pid, 'SIGKILL');
    });
    const url = (await dashboard.waitForLine(/^DASHBOARD http:\/\/127\.0\.0\.1:\d+\/$/, 30_000)).slice('DASHBOARD '.length);
    const browser: Browser = await launching;

    const page: Page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 820, deviceScaleFactor: 1 });
    expect((await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 15_000 }))?.status()).toBe(401);
    await page.goto(`${url}?token=${token}`, { waitUntil: 'domcontentloaded', timeout: 15_000 });
    expect(page.url()).toBe(url); // the token left the address bar
    expect(await page.title()).toBe(`inferq · ${model}`);

    const ids = ['requests-total', 'items-total', 'throughput', 'p50', 'p95', 'p99', 'batch-size', 'hit-rate', 'queue-wait', 'workers-count', 'clients-count'];
    const read = () =>
      page.evaluate((list: string[]) => {
        // Runs in the page (this tsconfig has no DOM types).
        const doc = (globalThis as unknown as { document: { getElementById(id: string): { textContent: string | null } | null } }).document;
        return Object.fromEntries(list.map((id) => [id, doc.getElementById(id)?.textContent ?? null]));
      }, ids) as Promise<Record<string, string | null>>;
    const n = (s: string | null | undefined) => Number((s ?? '').replace(/,/g, ''));

    // Live once an event arrived: no tenant yet, so a line says so instead of an empty table.
    await page.waitForSelector('#status.live', { timeout: 15_000 });
    expect(await page.$eval('#tenants-empty', (el) => [el.hasAttribute('hidden'), el.textContent])).toEqual([false, expect.stringMatching(/^no tenants yet/)]);
    expect(await page.$eval('#tenants', (el) => el.hasAttribute('hidden'))).toBe(true);

    // The operator sets beta's weight and caps (never reached here).
    await setTenant(conn, modelKeys(model, prefix), 'beta', { weight: 2, maxQueued: 1000, maxSlots: 12 });

    // Load: 4 loops of requests (3 alpha, 1 beta), bounded in time and count; a third of them from 50 hot inputs (cache hits), the rest new.
    let stopLoad = false;
    const loadUntil = Date.now() + 45_000;
    let sent = 0;
    const sentBy = { alpha: 0, beta: 0 };
    const loops = (['alpha', 'alpha', 'alpha', 'beta'] as const).map(async (tenant) => {
      while (!stopLoad && Date.now() < loadUntil && sent < 200_000) {
        sent++;
        sentBy[tenant]++;
        const x = Math.random() < 0.33 ? Math.floor(Math.random() * 50) : 1000 + sent;
        await clients[tenant].infer({ x }, { timeoutMs: 10_000 }).catch(() => undefined);
        await sleep(5 + Math.random() * 5);
      }
    });
    const stopTheLoad = async () => {
      stopLoad = true;
      await Promise.all(loops);
    };
    h.defer(stopTheLoad);
    // The rates need two events with requests in between.
    expect(n((await until(read, (r) => n(r['requests-total']) > 0, 15_000))['requests-total'])).toBeGreaterThan(0);
    await sleep(1500);


    const first = await read();
    await sleep(3000);
    const second = await read();

    // Totals grow with the load, and the page shows them as they grow.
    expect(n(second['requests-total'])).toBeGreaterThan(n(first['requests-total']));
    expect(n(second['items-total'])).toBeGreaterThan(n(first['items-total']));
    expect(n(first['requests-total'])).toBeGreaterThan(0);
    // Live numbers are numbers, not the '–' of "no data".
    for (const id of ['throughput', 'p50', 'p95', 'p99', 'batch-size', 'hit-rate', 'queue-wait']) expect(Number.isFinite(n(second[id])), `${id}: ${second[id]}`).toBe(true);
    expect(n(second.throughput)).toBeGreaterThan(0);
    expect(n(second.p99)).toBeGreaterThanOrEqual(n(second.p50));
    expect(second['workers-count']).toBe('1');
    expect(await page.$eval('#workers', (el) => el.textContent ?? '')).toContain('dash-worker-1');
    expect(n(second['clients-count'])).toBeGreaterThanOrEqual(1);
    // The sparklines draw.
    expect(await page.$eval('#spark-throughput polyline', (el) => (el.getAttribute('points') ?? '').split(' ').length)).toBeGreaterThan(1);

    const shot = process.env.DASHBOARD_SCREENSHOT;
    if (shot) {
      // Let the sparklines fill up a little first (the load runs for 45 s at most).
      await sleep(Math.min(30_000, Number(process.env.DASHBOARD_SCREENSHOT_WAIT_MS ?? 20_000)));
      await page.setViewport({ width: 1280, height: 600, deviceScaleFactor: 1 });
      await page.screenshot({ path: shot as `${string}.png`, fullPage: true });
    }

    // A tenant name nobody could send (TENANT_PATTERN refuses it), written straight into the stats hash: the page must show it as text.
    const hostile = `<img src=x onerror="document.title='pwned'">`;
    await conn.hset(modelKeys(model, prefix).statsTenants, `${hostile}|requests`, '1');

    // The tenant table, once the load stopped and every count reached Redis: a row per tenant, cells by column.
    await stopTheLoad();
    type Table = Record<string, Record<string, string>>;
    const table = () =>
      page.$eval('#tenants', (el) => {
        const cols = [...el.querySelectorAll('thead th')].map((th) => th.getAttribute('data-col') ?? '');
        const out: Record<string, Record<string, string>> = {};
        for (const tr of el.querySelectorAll('tbody tr')) {
          const cells = [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '');
          out[tr.getAttribute('data-tenant') ?? ''] = Object.fromEntries(cols.map((c, i) => [c, cells[i] ?? '']));
        }
        return out;
      }) as Promise<Table>;
    const settled = (t: Table) => hostile in t && tenants.every((tenant) => n(t[tenant]?.requests) === sentBy[tenant] && t[tenant]?.queued === '0');
    const shown = await until(table, settled, 15_000);
    expect(Object.keys(shown).sort()).toEqual([...tenants, hostile].sort());
    expect(sentBy.alpha).toBeGreaterThan(0);
    expect(sentBy.beta).toBeGreaterThan(0);
    const stored = Object.fromEntries((await readTenantStats(conn, model, prefix)).map((t) => [t.tenant, t]));
    for (const tenant of tenants) {
      const row = shown[tenant]!;
      const want = stored[tenant]!;
      expect(n(row.requests), tenant).toBe(sentBy[tenant]);
      expect([n(row.refused), n(row.timeouts), n(row.cacheHits), n(row.queued)], tenant).toEqual([want.refused, want.timeouts, want.cacheHits, 0]);
      expect(n(row.p99LatencyMs), tenant).toBeGreaterThanOrEqual(n(row.p50LatencyMs));
      expect(n(row.p50LatencyMs), tenant).toBeGreaterThan(0);
    }
    expect([shown.alpha!.weight, shown.alpha!.cap, shown.alpha!.slotCap]).toEqual(['1', '–', '–']);
    expect([shown.beta!.weight, shown.beta!.cap, shown.beta!.slotCap]).toEqual(['2', '1,000', '12']);
    // A third of the inputs are hot: some are cache hits (not per tenant: a short run under load may give beta none).
    expect(n(shown.alpha!.cacheHits) + n(shown.beta!.cacheHits)).toBeGreaterThan(0);
    // Most requests first: alpha sent about three times as many.
    expect(await page.$$eval('#tenants tbody tr', (trs) => trs.map((tr) => tr.getAttribute('data-tenant')))).toEqual([...tenants, hostile]);
    expect(await page.$eval('#tenants-empty', (el) => el.hasAttribute('hidden'))).toBe(true);

    // The hostile name is text: no element made of it, nothing it would run ran.
    expect(shown[hostile]!.requests).toBe('1');
    expect(await page.$('#tenants img')).toBeNull();
    expect(await page.title()).toBe(`inferq · ${model}`);
  }, 120_000);
});

/**
 * `inferq dashboard` in a real browser: headless Chromium (puppeteer-core,
 * Debian's `chromium`) loads the page while a worker serves a client that
 * generates load, and the numbers on the page change as the load goes on.
 * The dashboard runs with a token (INFERQ_HTTP_TOKEN): the browser opens
 * `/?token=`, is redirected to `/` with a session cookie, and the page's
 * event stream is let in by that cookie.
 * Skipped, saying why, when no Chromium binary is found (`pnpm test`
 * installs Debian's chromium when it runs as root with apt-get).
 *
 * `DASHBOARD_SCREENSHOT=docs/dashboard.png npx vitest run packages/integration/test/dashboard.test.ts`
 * also saves a screenshot of the page under load (after another 20 s,
 * `DASHBOARD_SCREENSHOT_WAIT_MS`), as in the README.
 */
import { afterAll, describe, expect, it } from 'vitest';
import puppeteer, { type Browser } from 'puppeteer-core';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { CLIENT_CLI, HOW_TO_GET_CHROMIUM, findChromiumBinary, spawnNode, startTestRedis, type SpawnedProcess, type TestRedis } from '@inferq/testkit';

const chromium = findChromiumBinary();
if (!chromium) console.warn(`dashboard.test.ts: skipped, ${HOW_TO_GET_CHROMIUM}`);
const title = 'the page shows live numbers that change under load (headless Chromium)';

let redis: TestRedis | undefined;
let browser: Browser | undefined;
let dashboard: SpawnedProcess | undefined;
const closers: Array<() => Promise<unknown>> = [];

afterAll(async () => {
  if (browser) {
    const pid = browser.process()?.pid;
    await Promise.race([browser.close(), new Promise((r) => setTimeout(r, 5000))]).catch(() => undefined);
    if (pid !== undefined && browser.process()?.exitCode === null) process.kill(pid, 'SIGKILL');
  }
  await dashboard?.stop(5000);
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await redis?.cleanup();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('inferq dashboard', () => {
  (chromium ? it : it.skip)(chromium ? title : `${title} [skipped: ${HOW_TO_GET_CHROMIUM}]`, async () => {
    redis = await startTestRedis();
    const model = 'dash';
    const prefix = redis.prefix;
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
    closers.push(() => worker.stop());
    await worker.start();
    const client = new InferenceClient<{ x: number }, { y: number }>({ redis: redis.url, model, prefix });
    closers.push(() => client.close());

    // The dashboard and the browser start before the load, which keeps both cores busy.
    const token = 'browser-test-token';
    dashboard = spawnNode(CLIENT_CLI, ['dashboard', '--model', model, '--port', '0', '--redis', redis.url, '--prefix', prefix], { INFERQ_HTTP_TOKEN: token });
    const launching = puppeteer.launch({
      executablePath: chromium as string,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
      timeout: 30_000,
    });
    launching.then((b) => (browser = b)).catch(() => undefined);
    const url = (await dashboard.waitForLine(/^DASHBOARD http:\/\/127\.0\.0\.1:\d+\/$/, 30_000)).slice('DASHBOARD '.length);
    browser = await launching;

    // Load: 4 loops of requests, bounded in time and count; a third of them from 50 hot inputs (cache hits), the rest new.
    let stopLoad = false;
    const loadUntil = Date.now() + 45_000;
    let sent = 0;
    const loops = Array.from({ length: 4 }, async () => {
      while (!stopLoad && Date.now() < loadUntil && sent < 200_000) {
        sent++;
        const x = Math.random() < 0.33 ? Math.floor(Math.random() * 50) : 1000 + sent;
        await client.infer({ x }, { timeoutMs: 10_000 }).catch(() => undefined);
        await sleep(5 + Math.random() * 5);
      }
    });
    closers.push(async () => {
      stopLoad = true;
      await Promise.all(loops);
    });

    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 820, deviceScaleFactor: 1 });
    expect((await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 15_000 }))?.status()).toBe(401);
    await page.goto(`${url}?token=${token}`, { waitUntil: 'domcontentloaded', timeout: 15_000 });
    expect(page.url()).toBe(url); // the token left the address bar
    expect(await page.title()).toBe(`inferq · ${model}`);
    // Live once an event arrived; the rates need two events.
    await page.waitForSelector('#status.live', { timeout: 15_000 });
    await sleep(1500);

    const ids = ['requests-total', 'items-total', 'throughput', 'p50', 'p95', 'p99', 'batch-size', 'hit-rate', 'queue-wait', 'workers-count', 'clients-count'];
    const read = () =>
      page.evaluate((list: string[]) => {
        // Runs in the page (this tsconfig has no DOM types).
        const doc = (globalThis as unknown as { document: { getElementById(id: string): { textContent: string | null } | null } }).document;
        return Object.fromEntries(list.map((id) => [id, doc.getElementById(id)?.textContent ?? null]));
      }, ids) as Promise<Record<string, string | null>>;
    const n = (s: string | null | undefined) => Number((s ?? '').replace(/,/g, ''));

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
  }, 90_000);
});

/**
 * `inferq`: operator commands against a model's keys in Redis.
 *
 *   inferq stats --model <name> [--json] [--by-tenant]
 *                                            statistics (table or JSON), or per tenant; exit 1 when
 *                                            the model has no keys (a typo in --model/--prefix/--redis)
 *   inferq limits --model <name> [--max-queue-length <n>]
 *                                            show or set the model's queue bound (0 removes it);
 *                                            every client applies a change within a second
 *   inferq tenants --model <name> [set <tenant> [--weight <w>] [--max-queued <n>] [--max-slots <n>]]
 *                                            tenants: queued, share, weight, cap; set a weight or cap
 *   inferq clear-cache --model <name>        remove the model's cached results
 *   inferq reset-stats --model <name>        zero the model's statistics
 *   inferq metrics --model <name> [--port 9464] [--host 127.0.0.1]
 *                                            the model's shared stats at /metrics (Prometheus)
 *   inferq dashboard --model <name> [--port 8090] [--host 127.0.0.1]
 *                                            a live web page of the model (server-sent events)
 *
 * `metrics` and `dashboard` print `METRICS <url>` / `DASHBOARD <url>` and
 * serve until SIGINT/SIGTERM; `--port 0` takes any free port. Both check the
 * Host header (`--allow-host <name>`, repeatable) and, with `--auth-token`
 * or `INFERQ_HTTP_TOKEN`, a bearer token; beyond loopback they need one
 * (or `--insecure-no-auth`). `dashboard --max-subscribers <n>` (default 32)
 * bounds its event streams. See docs/http-endpoints.md.
 *   inferq convicted --model <name> [--pardon <cache key>] [--json]
 *                                            inputs the fleet convicted of killing the worker process
 *                                            (cache key, deaths, time left); --pardon lets one run again
 *   inferq set-shards --model <name> --shards <n>
 *                                            change the model's queueShards (refused while any shard holds work
 *                                            or any client or worker of the model is alive)
 *
 * `--redis <url>` or `REDIS_URL` (default redis://127.0.0.1:6379), or
 * `--redis-cluster host:port,...` or `REDIS_CLUSTER_NODES` for a Redis
 * Cluster; `--prefix`. Commands find the model's shards themselves (the
 * count its clients and workers recorded).
 */
import { parseArgs } from 'node:util';
import { MODEL_NAME_PATTERN, modelKeys, readTenantStats, createRedis, describeRedis, packageVersion, readStats, redactRedisUrl, redactUrlsIn, redisFromCli, resetStats } from '@inferq/core';
import { MAX_QUEUE_SHARDS, TENANT_PATTERN, clearShardCaches, readLimits, readShardCount, setMaxQueueLength, setShardCount, setTenant, shardKeys } from '@inferq/core/protocol';
import { formatStatsTable, formatTenantTable } from './stats-table.js';
import { modelHasKeys } from './model-presence.js';
import { ModelReader } from './model-snapshot.js';
import { serveDashboard, serveMetrics, type RunningServer } from './monitor-server.js';

const HELP = `Usage: inferq <stats | limits | tenants | clear-cache | reset-stats | metrics | dashboard | set-shards | convicted> --model <name> [--json]
              [--redis <url> | --redis-cluster <host:port,...>] [--prefix <p>]
       inferq stats --model <name> [--json] [--by-tenant]                 statistics; exits 1 when the model has no keys in Redis
       inferq limits --model <name> [--max-queue-length <n>]              show or set the model's queue bound (0 = none)
       inferq tenants --model <name> [set <tenant> [--weight <w>] [--max-queued <n>] [--max-slots <n>]]
                                                                          tenants' places, shares, weights, caps; set one
       inferq --help | --version
       inferq set-shards --model <name> --shards <n>                      change queueShards of a drained model
       inferq convicted --model <name> [--pardon <cache key>]             inputs convicted of killing the worker; pardon one
       inferq metrics --model <name> [--port 9464] [--host 127.0.0.1]      Prometheus /metrics of the model's shared stats
       inferq dashboard --model <name> [--port 8090] [--host 127.0.0.1]    live web page of the model
              [--max-subscribers 32]
       metrics, dashboard: [--auth-token <t> (INFERQ_HTTP_TOKEN)] [--allow-host <name>]... [--insecure-no-auth]`;

const DEFAULT_PORTS: Record<string, number> = { metrics: 9464, dashboard: 8090 };

/** Runs a server until SIGINT/SIGTERM, then closes it. */
async function serveUntilSignal(start: () => Promise<RunningServer>, label: string): Promise<number> {
  const server = await start();
  process.stdout.write(`${label} ${server.url}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
  return 0;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      redis: { type: 'string' },
      'redis-cluster': { type: 'string' },
      shards: { type: 'string' },
      'by-tenant': { type: 'boolean' },
      'max-queue-length': { type: 'string' },
      weight: { type: 'string' },
      'max-queued': { type: 'string' },
      'max-slots': { type: 'string' },
      pardon: { type: 'string' },
      prefix: { type: 'string' },
      json: { type: 'boolean' },
      port: { type: 'string' },
      host: { type: 'string' },
      'auth-token': { type: 'string' },
      'allow-host': { type: 'string', multiple: true },
      'insecure-no-auth': { type: 'boolean' },
      'max-subscribers': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  });
  const command = positionals[0];
  if (values.version) {
    console.log(packageVersion(import.meta.url, '@inferq/client'));
    return 0;
  }
  if (values.help || command === 'help') {
    console.log(HELP);
    return 0;
  }
  if (!command) {
    console.error(HELP);
    return 2;
  }
  const model = values.model ?? process.env.INFERQ_MODEL;
  if (!model || !MODEL_NAME_PATTERN.test(model)) {
    console.error(`inferq: --model <name> is required (letters, digits, '.', '_', '-').\n${HELP}`);
    return 2;
  }
  const prefix = values.prefix ?? process.env.INFERQ_PREFIX ?? 'inferq';
  const target = redisFromCli(values.redis, values['redis-cluster']);
  const where = typeof target === 'string' ? redactRedisUrl(target) : describeRedis(target);
  const redis = createRedis(target, { connectionName: 'inferq:cli' });
  redis.on('error', () => undefined); // the failing command reports it
  try {
    switch (command) {
      case 'stats': {
        if (!(await modelHasKeys(redis, model, prefix))) return unknownModel(model, prefix, where);
        if (values['by-tenant']) {
          const rows = await readTenantStats(redis, model, prefix);
          console.log(values.json ? JSON.stringify(rows, null, 2) : formatTenantTable(rows));
          return 0;
        }
        const s = await readStats(redis, model, prefix);
        console.log(values.json ? JSON.stringify(s, null, 2) : formatStatsTable(s));
        return 0;
      }
      case 'limits': {
        const keys = modelKeys(model, prefix);
        if (values['max-queue-length'] !== undefined) {
          const n = Number(values['max-queue-length']);
          if (!Number.isInteger(n) || n < 0 || n > 1_000_000_000) {
            console.error(`inferq: --max-queue-length must be an integer 0..1000000000, got '${values['max-queue-length']}'.`);
            return 2;
          }
          await setMaxQueueLength(redis, keys, n);
          console.log(n > 0 ? `model '${model}' now bounds its queue at ${n} (every client applies it within a second)` : `model '${model}' has no queue bound now`);
          return 0;
        }
        const limits = await readLimits(redis, keys);
        console.log(values.json ? JSON.stringify(limits, null, 2) : `maxQueueLength ${limits.maxQueueLength || 'none'}`);
        return 0;
      }
      case 'tenants': {
        const keys = modelKeys(model, prefix);
        if (positionals[1] === 'set') {
          const tenant = positionals[2];
          if (!tenant || !TENANT_PATTERN.test(tenant)) {
            console.error(`inferq: tenants set <tenant>: a tenant is 1-64 letters, digits, '.', '_' or '-', got '${tenant ?? ''}'.`);
            return 2;
          }
          const weight = values.weight === undefined ? undefined : Number(values.weight);
          const maxQueued = values['max-queued'] === undefined ? undefined : Number(values['max-queued']);
          if (weight !== undefined && !(Number.isFinite(weight) && weight > 0 && weight <= 1000)) {
            console.error(`inferq: --weight must be a number in (0, 1000], got '${values.weight}'.`);
            return 2;
          }
          if (maxQueued !== undefined && !(Number.isInteger(maxQueued) && maxQueued >= 0)) {
            console.error(`inferq: --max-queued must be an integer >= 0 (0 removes the cap), got '${values['max-queued']}'.`);
            return 2;
          }
          const maxSlots = values['max-slots'] === undefined ? undefined : Number(values['max-slots']);
          if (maxSlots !== undefined && !(Number.isInteger(maxSlots) && maxSlots >= 0)) {
            console.error(`inferq: --max-slots must be an integer >= 0 (0 removes the cap), got '${values['max-slots']}'.`);
            return 2;
          }
          if (weight === undefined && maxQueued === undefined && maxSlots === undefined) {
            console.error('inferq: tenants set <tenant> needs --weight <w>, --max-queued <n> and/or --max-slots <n>.');
            return 2;
          }
          await setTenant(redis, keys, tenant, { ...(weight !== undefined && { weight }), ...(maxQueued !== undefined && { maxQueued }), ...(maxSlots !== undefined && { maxSlots }) });
          const said = [weight !== undefined ? `weight ${weight}` : '', maxQueued !== undefined ? `cap ${maxQueued || 'none'}` : '', maxSlots !== undefined ? `slot cap ${maxSlots || 'none'}` : ''];
          console.log(`tenant '${tenant}' of model '${model}': ${said.filter(Boolean).join(', ')}`);
          return 0;
        }
        const rows = await readTenantStats(redis, model, prefix);
        console.log(values.json ? JSON.stringify(rows, null, 2) : formatTenantTable(rows));
        return 0;
      }
      case 'clear-cache': {
        // A typo would otherwise "clear" nothing and say it did.
        if (!(await modelHasKeys(redis, model, prefix))) return unknownModel(model, prefix, where);
        await clearShardCaches(redis, shardKeys(model, prefix, await readShardCount(redis, model, prefix)));
        console.log(`cleared the result cache of model '${model}'`);
        return 0;
      }
      case 'metrics':
      case 'dashboard': {
        const port = values.port === undefined ? DEFAULT_PORTS[command]! : Number(values.port);
        if (!Number.isInteger(port) || port < 0 || port > 65535) {
          console.error(`inferq: --port must be a TCP port 0..65535, got '${values.port}'.`);
          return 2;
        }
        const reader = new ModelReader(redis, model, prefix);
        const maxSubscribers = values['max-subscribers'] === undefined ? undefined : Number(values['max-subscribers']);
        if (maxSubscribers !== undefined && !(Number.isInteger(maxSubscribers) && maxSubscribers >= 1)) {
          console.error(`inferq: --max-subscribers must be a positive integer, got '${values['max-subscribers']}'.`);
          return 2;
        }
        const authToken = values['auth-token'] ?? (process.env.INFERQ_HTTP_TOKEN || undefined);
        const access = { ...(authToken !== undefined && { authToken }), allowHosts: values['allow-host'] ?? [], insecureNoAuth: values['insecure-no-auth'] === true };
        const listen = { port, host: values.host ?? '127.0.0.1', access };
        try {
          return command === 'metrics'
            ? await serveUntilSignal(() => serveMetrics(reader, listen), 'METRICS')
            : await serveUntilSignal(() => serveDashboard(reader, { ...listen, maxSubscribers }), 'DASHBOARD');
        } finally {
          await reader.close();
        }
      }
      case 'set-shards': {
        const n = Number(values.shards);
        if (!Number.isInteger(n) || n < 1 || n > MAX_QUEUE_SHARDS) {
          console.error(`inferq: --shards must be an integer 1..${MAX_QUEUE_SHARDS}, got '${values.shards}'.`);
          return 2;
        }
        await setShardCount(redis, model, prefix, n);
        console.log(`model '${model}' now runs with queueShards ${n}; start its clients and workers with it`);
        return 0;
      }
      case 'convicted': {
        // Model-wide hash: input fingerprint (its cache key) -> deaths; workers re-read it every 2 s.
        const key = modelKeys(model, prefix).convicted;
        if (values.pardon !== undefined) {
          const removed = await redis.hdel(key, values.pardon);
          if (removed === 0) {
            console.error(`inferq: no input of model '${model}' is convicted under '${values.pardon}' (see 'inferq convicted --model ${model}').`);
            return 1;
          }
          console.log(`pardoned ${values.pardon}: workers of model '${model}' run it again within 2 s`);
          return 0;
        }
        const [all, ttlMs] = await Promise.all([redis.hgetall(key), redis.pttl(key)]);
        const rows = Object.entries(all).map(([cacheKey, deaths]) => ({ cacheKey, deaths: Number(deaths) || 1 }));
        const expiresInMs = ttlMs > 0 ? ttlMs : null;
        if (values.json) console.log(JSON.stringify({ model, convicted: rows, expiresInMs }, null, 2));
        else if (rows.length === 0) console.log(`no input of model '${model}' is convicted`);
        else {
          console.log(`${'cache key'.padEnd(66)} deaths`);
          for (const r of rows) console.log(`${r.cacheKey.padEnd(66)} ${r.deaths}`);
          if (expiresInMs !== null) console.log(`(all kept ${Math.round(expiresInMs / 60_000)} min more, 24 h after the latest conviction; --pardon <cache key> lets one run again)`);
        }
        return 0;
      }
      case 'reset-stats': {
        if (!(await modelHasKeys(redis, model, prefix))) return unknownModel(model, prefix, where);
        await resetStats(redis, model, prefix);
        console.log(`reset the statistics of model '${model}'`);
        return 0;
      }
      default:
        console.error(redactUrlsIn(`inferq: unknown command '${command}'.\n${HELP}`));
        return 2;
    }
  } finally {
    redis.disconnect();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    // Masked: a URL typo, an argument error or a Redis reply may quote the URL and its password.
    console.error(redactUrlsIn(`inferq: ${err instanceof Error ? err.message : String(err)}`));
    process.exit(1);
  },
);

/** A model no client or worker has used under this prefix: most likely a typo. Exit code 1. */
function unknownModel(model: string, prefix: string, where: string): number {
  console.error(`inferq: model '${model}' has no keys under prefix '${prefix}' in ${where}: no client or worker has used it there. Check --model, --prefix and --redis.`);
  return 1;
}

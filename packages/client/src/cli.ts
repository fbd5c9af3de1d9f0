/**
 * `inferq`: operator commands against a model's keys in Redis.
 *
 *   inferq stats --model <name> [--json]     statistics (table or JSON)
 *   inferq clear-cache --model <name>        remove the model's cached results
 *   inferq reset-stats --model <name>        zero the model's statistics
 *
 * `--redis <url>` or `REDIS_URL` (default redis://127.0.0.1:6379); `--prefix`.
 */
import { parseArgs } from 'node:util';
import { MODEL_NAME_PATTERN, RedisLruCache, createRedis, readStats, resetStats } from '@inferq/core';
import { formatStatsTable } from './stats-table.js';

const HELP = `Usage: inferq <stats | clear-cache | reset-stats> --model <name> [--json] [--redis <url>] [--prefix <p>]`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      redis: { type: 'string' },
      prefix: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals[0];
  if (values.help || !command) {
    console.log(HELP);
    return command ? 0 : 2;
  }
  const model = values.model ?? process.env.INFERQ_MODEL;
  if (!model || !MODEL_NAME_PATTERN.test(model)) {
    console.error(`inferq: --model <name> is required (letters, digits, '.', '_', '-').\n${HELP}`);
    return 2;
  }
  const prefix = values.prefix ?? process.env.INFERQ_PREFIX ?? 'inferq';
  const redis = createRedis(values.redis ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { connectionName: 'inferq:cli' });
  redis.on('error', () => undefined); // the failing command reports it
  try {
    switch (command) {
      case 'stats': {
        const s = await readStats(redis, model, prefix);
        console.log(values.json ? JSON.stringify(s, null, 2) : formatStatsTable(s));
        return 0;
      }
      case 'clear-cache': {
        await new RedisLruCache({ redis, model, prefix, maxSize: 1 }).clear();
        console.log(`cleared the result cache of model '${model}'`);
        return 0;
      }
      case 'reset-stats': {
        await resetStats(redis, model, prefix);
        console.log(`reset the statistics of model '${model}'`);
        return 0;
      }
      default:
        console.error(`inferq: unknown command '${command}'.\n${HELP}`);
        return 2;
    }
  } finally {
    redis.disconnect();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`inferq: ${(err as Error).message}`);
    process.exit(1);
  },
);

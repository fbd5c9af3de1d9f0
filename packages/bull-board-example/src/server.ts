/**
 * A runnable bull-board for inferq models, read-only (docs/bull-board.md):
 *
 *   REDIS_URL=redis://127.0.0.1:6379 INFERQ_MODELS=sentiment,other PORT=3000 \
 *     node --conditions=source --import tsx packages/bull-board-example/src/server.ts
 *
 * INFERQ_PREFIX (default inferq) is the key prefix of the models' clients and
 * workers; each model's queue shards are read from Redis. Listens on
 * 127.0.0.1 (HOST to change it: the board has no login of its own, put it
 * behind your authentication before exposing it) and prints `BOARD <url>` on
 * stdout once it does. SIGTERM/SIGINT close it.
 */
import express from 'express';
import { Redis } from 'ioredis';
import type { AddressInfo } from 'node:net';
import { createInferqBoard } from './inferq-board.js';

const BASE_PATH = '/admin/queues';

async function main(): Promise<void> {
  const models = (process.env.INFERQ_MODELS ?? '').split(',').map((m) => m.trim()).filter(Boolean);
  if (models.length === 0) throw new Error('INFERQ_MODELS is required: a comma list of model names');
  const prefix = process.env.INFERQ_PREFIX ?? 'inferq';
  // BullMQ requires maxRetriesPerRequest: null on connections it is given.
  const connection = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null, connectionName: 'inferq:bull-board' });
  connection.on('error', (err) => console.error(`bull-board: Redis connection error: ${err.message}`));
  const board = await createInferqBoard({ connection, models: models.map((model) => ({ model, prefix })), basePath: BASE_PATH });
  const app = express();
  app.use(BASE_PATH, board.router);
  const server = app.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '127.0.0.1');
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  const { address, port } = server.address() as AddressInfo;
  process.stdout.write(`BOARD http://${address}:${port}${BASE_PATH}\n`);
  const stop = () => {
    server.close();
    server.closeAllConnections(); // keep-alive connections of browsers would hold close() open
    void board.close().finally(() => connection.disconnect());
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  console.error(`bull-board: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});

/**
 * Reading a client's result inbox at least once (script `inbox-take-2.lua`):
 * elements move to a pending list as they are handed out and are deleted by
 * the next take, sent only after they were handled; a blocking wait moves
 * nothing (see `waitInbox`). After a lost connection
 * the client first re-reads the pending list (`readPending`); request ids
 * make a second delivery harmless.
 */
import type { RedisClient } from '../redis-connection.js';
import { callScript } from '../lua-scripts.js';
import type { ModelKeys } from './keys.js';

/** Acknowledges the previous take and takes up to `count` elements. */
export async function takeInbox(redis: RedisClient, keys: ModelKeys, client: string, count: number, pendingTtlMs: number): Promise<string[]> {
  const reply = await callScript(redis, 'inbox-take', [keys.inbox(client), keys.inboxPending(client)], [String(count), String(pendingTtlMs)]);
  return (reply as unknown[]).map(String);
}

/**
 * Blocks up to `seconds` until the inbox holds an element, and moves
 * nothing: `BLMOVE inbox inbox RIGHT RIGHT` rotates the list onto itself
 * (order and TTL unchanged). Elements are only ever taken by `takeInbox`,
 * which gives the pending list its TTL in the same script: a client that
 * dies at any moment leaves nothing that never expires.
 */
export async function waitInbox(redis: RedisClient, keys: ModelKeys, client: string, seconds: number): Promise<boolean> {
  const reply = await redis.blmove(keys.inbox(client), keys.inbox(client), 'RIGHT', 'RIGHT', seconds);
  return reply !== null;
}

/** Elements handed out before a connection was lost, not yet acknowledged. */
export async function readPending(redis: RedisClient, keys: ModelKeys, client: string): Promise<string[]> {
  return redis.lrange(keys.inboxPending(client), 0, -1);
}

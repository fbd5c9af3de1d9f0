/**
 * Settling requests (script `settle-var.lua`): cache writes, each outcome to
 * its client's inbox and to the waiters of the flight it owns, flights
 * closed, each envelope item at most once per job — queued on a pipeline, so
 * a worker can add the batch's stats to the same round trip. Each client's
 * inbox key is passed once, and its results arrive as one list element.
 *
 * Used by a worker for every batch and for a job that failed for good. A
 * client gives up flights it owns but cannot have computed with
 * `releaseFlights` (its own script: the client role may not write the cache).
 *
 * Every key the script writes is declared (Redis Cluster's rule), including
 * the inboxes of other clients waiting on the items' flights, which only the
 * script can see. A call declares the items' clients plus the clients seen
 * waiting recently (`WaiterClients`); when a flight has a waiter outside
 * them, the script writes nothing and names the missing clients, and the
 * call is sent again with them (`settleReplies`).
 */
import type { ChainableCommander } from 'ioredis';
import type { RedisClient } from '../redis-connection.js';
import { callScript, pipelineScript } from '../lua-scripts.js';
import type { ModelKeys } from './keys.js';
import { DEFAULT_TENANT, releaseRoom } from './queue-room.js';

export interface SettleItem {
  requestId: string;
  /** Client whose inbox gets the outcome. */
  client: string;
  /** Cache key of the flight this item owns: its waiters are served and the flight closed. */
  cacheKey?: string;
  /** The job and envelope index of the item: it is settled at most once per job. */
  job?: { id: string; index: number };
  /** Outcome payload (JSON text) for the item's callers. */
  payload: string;
  /** Output JSON to write to the cache under `cacheKey`; absent = write nothing. */
  cacheValue?: string;
  /** The request holds a place in the model's queue ledger (admitted under maxQueueLength): settling it gives the place back, once. */
  counted?: boolean;
  /** The tenant whose place it holds (with `counted`; default `default`). */
  tenant?: string;
}

export interface SettleOptions {
  /** Cache capacity (cacheMaxSize). */
  maxSize: number;
  /** Cache capacity in bytes (cacheMaxBytes); an output larger than this alone is not cached. */
  maxBytes: number;
  /** TTL of written cache entries in ms; 0 = none. */
  cacheTtlMs: number;
  /** TTL set on each inbox pushed to, in ms. */
  inboxTtlMs: number;
  /** TTL of the jobs' done bitmaps in ms: longer than a job can be re-run. */
  doneTtlMs: number;
  /**
   * The model's queue ledger (`ModelKeys.room`) and whether the settle script
   * may write it: yes on one Redis, and on a cluster with one shard (same
   * slot); on a cluster with several shards the script names the request ids
   * settled and `settleReplies` gives their places back in a second call.
   */
  room?: { keys: Pick<ModelKeys, 'room' | 'roomCounts'>; inScript: boolean };
}

/** Items per script call: bounds how long one call holds Redis. */
const CHUNK = 256;
/** Sends of one call when waiters keep joining between them (each send adds the clients it missed). */
const MAX_SENDS = 8;

/**
 * Clients seen waiting on flights lately, most recent last: a settle
 * declares their inboxes up front, so it rarely needs a second send. Bounded
 * in size and age; one per worker (a client id is the same in every shard).
 */
export class WaiterClients {
  private readonly seen = new Map<string, number>();
  constructor(
    private readonly max = 128,
    private readonly maxAgeMs = 300_000,
  ) {}

  note(clients: Iterable<string>, now = Date.now()): void {
    for (const c of clients) {
      this.seen.delete(c);
      this.seen.set(c, now);
    }
    while (this.seen.size > this.max) this.seen.delete(this.seen.keys().next().value as string);
  }

  list(now = Date.now()): string[] {
    for (const [c, at] of this.seen) {
      if (now - at <= this.maxAgeMs) break;
      this.seen.delete(c);
    }
    return [...this.seen.keys()];
  }
}

/** One script call of a settle: its items and the clients whose inboxes it declares. */
export interface SettleCall {
  items: readonly SettleItem[];
  clients: readonly string[];
}

/** The settle script's reply: counts, or the clients whose inboxes it needed and was not given. */
export type SettleReply = { evicted: number; served: number; skipped: number; tooLarge: number; released: number; toRelease: string[] } | { missing: string[] };

/** Splits items into script calls; each declares its items' clients plus `waiters`. */
export function settleCalls(items: readonly SettleItem[], waiters: readonly string[] = []): SettleCall[] {
  const calls: SettleCall[] = [];
  for (let start = 0; start < items.length; start += CHUNK) {
    const chunk = items.slice(start, start + CHUNK);
    calls.push({ items: chunk, clients: [...new Set([...chunk.map((it) => it.client), ...waiters])] });
  }
  return calls;
}

/** Queues one settle script call per `SettleCall` on the pipeline; returns the calls in order. */
export function appendSettle(pipeline: ChainableCommander, keys: ModelKeys, items: readonly SettleItem[], o: SettleOptions, waiters: readonly string[] = []): SettleCall[] {
  const calls = settleCalls(items, waiters);
  for (const call of calls) appendSettleCall(pipeline, keys, call, o);
  return calls;
}

export function parseSettleReply(reply: unknown): SettleReply {
  if (!Array.isArray(reply)) throw new TypeError(`settle: unexpected reply ${String(reply)}`);
  if (Number(reply[0]) === -1) return { missing: reply.slice(1).map(String) };
  return {
    evicted: Number(reply[0]) || 0,
    served: Number(reply[1]) || 0,
    skipped: Number(reply[2]) || 0,
    tooLarge: Number(reply[3]) || 0,
    released: Number(reply[4]) || 0,
    toRelease: reply.slice(5).map(String),
  };
}

/**
 * The replies of settle calls sent on a pipeline, each call that named
 * missing clients sent again (alone) with them until it went through.
 * Rejects with the first Redis error; notes every missing client in `known`.
 */
export async function settleReplies(
  redis: RedisClient,
  keys: ModelKeys,
  calls: readonly SettleCall[],
  replies: ReadonlyArray<[Error | null, unknown]>,
  o: SettleOptions,
  known?: WaiterClients,
): Promise<Array<Exclude<SettleReply, { missing: string[] }>>> {
  const out: Array<Exclude<SettleReply, { missing: string[] }>> = [];
  for (let i = 0; i < calls.length; i++) {
    const entry = replies[i];
    if (!entry) throw new Error('settle: the pipeline returned no reply');
    if (entry[0]) throw entry[0];
    let call = calls[i] as SettleCall;
    let reply = parseSettleReply(entry[1]);
    for (let sends = 1; 'missing' in reply; sends++) {
      if (sends >= MAX_SENDS) throw new Error(`settle: waiters kept joining (${reply.missing.length} new clients on send ${sends})`);
      known?.note(reply.missing);
      call = { items: call.items, clients: [...call.clients, ...reply.missing] };
      const pipeline = redis.pipeline();
      appendSettleCall(pipeline, keys, call, o);
      const [[err, raw] = [new Error('pipeline was not executed'), null]] = (await pipeline.exec()) ?? [];
      if (err) throw err;
      reply = parseSettleReply(raw);
    }
    if (reply.toRelease.length > 0 && o.room) {
      // The ledger is in another slot (cluster, several shards): give the places back now. A failure
      // rejects like a failed delivery (the job is retried; its settle names nothing twice, but the
      // ids of a retried call are given back again, which is harmless: release is idempotent).
      const byTenant = new Map<string, string[]>();
      for (const entry of reply.toRelease) {
        const sep = entry.indexOf(' ');
        const tenant = entry.slice(0, sep);
        let ids = byTenant.get(tenant);
        if (!ids) byTenant.set(tenant, (ids = []));
        ids.push(entry.slice(sep + 1));
      }
      for (const [tenant, ids] of byTenant) reply.released += await releaseRoom(redis, o.room.keys, tenant, ids);
    }
    out.push(reply);
  }
  return out;
}

function appendSettleCall(pipeline: ChainableCommander, keys: ModelKeys, call: SettleCall, o: SettleOptions): void {
  const chunk = call.items;
  const inboxIndex = new Map<string, number>();
  const doneIndex = new Map<string, number>();
  const inboxKeys: string[] = [];
  const flightKeys: string[] = [];
  const doneKeys: string[] = [];
  const itemArgs: string[] = [];
  const tenantIndex = new Map<string, number>();
  for (const c of call.clients) {
    if (inboxIndex.has(c)) continue;
    inboxKeys.push(keys.inbox(c));
    inboxIndex.set(c, inboxKeys.length);
  }
  for (const it of chunk) {
    const j = inboxIndex.get(it.client) as number;
    let f = 0;
    if (it.cacheKey !== undefined) {
      flightKeys.push(keys.flight(it.cacheKey));
      f = flightKeys.length;
    }
    let d = 0;
    if (it.job !== undefined) {
      d = doneIndex.get(it.job.id) ?? 0;
      if (d === 0) {
        doneKeys.push(keys.jobDone(it.job.id));
        d = doneKeys.length;
        doneIndex.set(it.job.id, d);
      }
    }
    const cacheEntry = it.cacheKey !== undefined && it.cacheValue !== undefined ? `${it.cacheKey} ${it.cacheValue}` : '';
    let q = 0;
    if (it.counted) {
      const tenant = it.tenant ?? DEFAULT_TENANT;
      q = tenantIndex.get(tenant) ?? 0;
      if (q === 0) tenantIndex.set(tenant, (q = tenantIndex.size + 1));
    }
    // One argument per item (the script's header): JSON payloads and cache entries hold no raw newline.
    itemArgs.push(`${j} ${f} ${d} ${it.job?.index ?? 0} ${q} ${it.requestId}\n${it.payload}\n${cacheEntry}`);
  }
  // Room mode (the script's header): 0 nothing counted, 1 the ledger is written here, 2 named for the caller.
  const roomMode = tenantIndex.size === 0 || !o.room ? 0 : o.room.inScript ? 1 : 2;
  const roomKeys = roomMode === 1 ? [(o.room as NonNullable<SettleOptions['room']>).keys.room, (o.room as NonNullable<SettleOptions['room']>).keys.roomCounts] : [];
  pipelineScript(
    pipeline,
    'settle',
    [keys.cacheLru, keys.cacheVal, keys.cacheExp, keys.cacheBytes, keys.cacheHits, ...inboxKeys, ...flightKeys, ...doneKeys, ...roomKeys],
    [
      String(o.maxSize),
      String(o.cacheTtlMs),
      String(o.inboxTtlMs),
      keys.inboxPrefix,
      String(inboxKeys.length),
      String(flightKeys.length),
      String(o.doneTtlMs),
      String(o.maxBytes),
      String(roomMode),
      String(tenantIndex.size),
      ...tenantIndex.keys(),
      ...itemArgs,
    ],
  );
}

/** Runs a settle on its own pipeline; rejects with the first command error. */
export async function execSettle(redis: RedisClient, keys: ModelKeys, items: readonly SettleItem[], o: SettleOptions, known?: WaiterClients): Promise<void> {
  const pipeline = redis.pipeline();
  const calls = appendSettle(pipeline, keys, items, o, known?.list());
  const results = await pipeline.exec();
  if (!results) throw new Error('pipeline was not executed');
  await settleReplies(redis, keys, calls, results, o, known);
}

/**
 * Gives up flights a client owns but could not have computed (its enqueue
 * failed, or its job failed for good): their waiters get `payload` now, and
 * the flights close, so the next identical request computes instead of
 * waiting for a job that does not exist.
 *
 * Runs under the client role, which may not write the cache: its own script
 * (`flight-release-var.lua`) declares only inboxes and flights, where the
 * settle script declares the cache keys it may write.
 */
export async function releaseFlights(
  redis: RedisClient,
  keys: ModelKeys,
  client: string,
  flights: ReadonlyArray<{ id: string; key: string }>,
  payload: string,
  known?: WaiterClients,
): Promise<void> {
  for (let start = 0; start < flights.length; start += CHUNK) {
    const chunk = flights.slice(start, start + CHUNK);
    let clients = [...new Set([client, ...(known?.list() ?? [])])];
    for (let sends = 1; ; sends++) {
      const reply = (await callScript(
        redis,
        'flight-release',
        [...clients.map((c) => keys.inbox(c)), ...chunk.map((f) => keys.flight(f.key))],
        [String(clients.length), keys.inboxPrefix, String(RELEASE_INBOX_TTL_MS), payload, ...chunk.map((f) => f.id)],
      )) as unknown[];
      if (Number(reply[0]) !== -1) break;
      const missing = reply.slice(1).map(String);
      if (sends >= MAX_SENDS) throw new Error(`flight-release: waiters kept joining (${missing.length} new clients on send ${sends})`);
      known?.note(missing);
      clients = [...clients, ...missing];
    }
  }
}

/** TTL given to the inboxes a release pushes to (as the settle of a worker's default). */
const RELEASE_INBOX_TTL_MS = 60_000;

/**
 * The Redis key layout. Every key of one model shares the hash tag
 * `{<model>}`, so multi-key Lua scripts are valid on Redis Cluster and an
 * operator finds all of a model's keys with `SCAN MATCH inferq:{<model>}:*`.
 *
 * | key                                | type | holds                                     |
 * |------------------------------------|------|-------------------------------------------|
 * | inferq:{m}:cache:lru               | ZSET | cache key -> last access (ms, Redis TIME) |
 * | inferq:{m}:cache:val               | HASH | cache key -> serialised output            |
 * | inferq:{m}:stats                   | HASH | counters (requests, cache_hits, ...)      |
 * | inferq:{m}:stats:latency           | HASH | latency histogram buckets                 |
 * | inferq:{m}:cache:exp               | ZSET | cache key -> expiry (ms), only with a TTL |
 * | inferq:{m}:flight:<cache key>      | STR  | single-flight marker: owner request id    |
 * | inferq:{m}:flight:<cache key>:w    | LIST | waiters: `<client id>|<request id>`       |
 * | inferq:{m}:inbox:<client id>       | LIST | results for one client process            |
 * | inferq:{m}:<bullmq keys>           | -    | the BullMQ queue (prefix inferq, name {m}) |
 */

export const DEFAULT_PREFIX = 'inferq';

/** Model names become part of keys; keep them to a safe alphabet. */
export const MODEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface ModelKeys {
  /** The hash-tagged root, e.g. `inferq:{sentiment}`. */
  readonly root: string;
  readonly cacheLru: string;
  readonly cacheVal: string;
  readonly cacheExp: string;
  readonly stats: string;
  readonly statsLatency: string;
  /** BullMQ queue prefix and name: BullMQ builds `<prefix>:<name>:<suffix>`. */
  readonly queuePrefix: string;
  readonly queueName: string;
  /** Prefix of single-flight markers; the marker of cache key K is `flightPrefix + K`. */
  readonly flightPrefix: string;
  /** Prefix of client inboxes; the inbox of client C is `inboxPrefix + C`. */
  readonly inboxPrefix: string;
  flight(cacheKey: string): string;
  flightWaiters(cacheKey: string): string;
  inbox(clientId: string): string;
}

export function modelKeys(model: string, prefix: string = DEFAULT_PREFIX): ModelKeys {
  const root = `${prefix}:{${model}}`;
  return Object.freeze({
    root,
    cacheLru: `${root}:cache:lru`,
    cacheVal: `${root}:cache:val`,
    cacheExp: `${root}:cache:exp`,
    stats: `${root}:stats`,
    statsLatency: `${root}:stats:latency`,
    queuePrefix: prefix,
    queueName: `{${model}}`,
    flightPrefix: `${root}:flight:`,
    inboxPrefix: `${root}:inbox:`,
    flight: (k: string) => `${root}:flight:${k}`,
    flightWaiters: (k: string) => `${root}:flight:${k}:w`,
    inbox: (c: string) => `${root}:inbox:${c}`,
  });
}

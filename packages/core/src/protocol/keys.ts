/**
 * The Redis key layout. Every key of one model shares the hash tag
 * `{<model>}`, so multi-key Lua scripts are valid on Redis Cluster and an
 * operator finds all of a model's keys with `SCAN MATCH inferq:{<model>}:*`.
 *
 * | key                                 | type | holds                                          |
 * |-------------------------------------|------|------------------------------------------------|
 * | inferq:{m}:cache:lru                | ZSET | cache key -> last access (µs, Redis TIME)      |
 * | inferq:{m}:cache:val                | HASH | cache key -> output JSON                       |
 * | inferq:{m}:cache:exp                | ZSET | cache key -> expiry (ms), only with a TTL      |
 * | inferq:{m}:cache:bytes              | STR  | bytes held: sum of value + key lengths         |
 * | inferq:{m}:stats                    | HASH | counters (requests, cache_hits, ...)           |
 * | inferq:{m}:stats:latency            | HASH | latency histogram buckets                      |
 * | inferq:{m}:flight:<cache key>       | HASH | one single flight: id, own, dl, w:<waiter>...  |
 * | inferq:{m}:inbox:<client id>        | LIST | results for one client process                 |
 * | inferq:{m}:inbox:<client id>:pending| LIST | results handed out, not yet acknowledged       |
 * | inferq:{m}:client:<client id>       | STR  | a client's heartbeat (TTL: HEARTBEAT_TTL_MS)   |
 * | inferq:{m}:done:<job id>            | STR  | bitmap of the job's envelope items settled     |
 * | inferq:{m}:crash:<job id>           | HASH | item index -> model calls it was alone in that never returned (crash isolation) |
 * | inferq:{m}:queued                   | STR  | requests enqueued, not yet answered (counter)  |
 * | inferq:{m}:cache:epoch              | STR  | bumped by every clearCache (clients' local caches follow) |
 * | inferq:{m}:served                   | STR  | `<modelVersion>/<quantization>` the workers serve |
 * | inferq:{m}:<bullmq keys>            | -    | the BullMQ queue (prefix inferq, name {m})     |
 */

export const DEFAULT_PREFIX = 'inferq';

/**
 * The one prefix rule, for every component: letters, digits, `.`, `_`, `:`,
 * `-` (no braces: they would break the model's hash tag; no spaces or `/`).
 */
export const KEY_PREFIX_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
export const KEY_PREFIX_RULE = '1..128 letters, digits, ".", "_", ":" or "-", starting with a letter or digit';

/** Model names become part of keys; keep them to a safe alphabet. */
export const MODEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface ModelKeys {
  /** The hash-tagged root, e.g. `inferq:{sentiment}`. */
  readonly root: string;
  readonly cacheLru: string;
  readonly cacheVal: string;
  readonly cacheExp: string;
  /** The cache's size in bytes (STRING integer): the sum of each entry's value and key lengths. */
  readonly cacheBytes: string;
  readonly stats: string;
  readonly statsLatency: string;
  /** Requests enqueued and not yet answered, across clients: what maxQueueLength bounds. */
  readonly queued: string;
  /** Bumped by every clearCache: in-process caches of clients drop their entries when it changes. */
  readonly cacheEpoch: string;
  /** `<modelVersion>/<quantization>` the workers serve (set by each worker at start). */
  readonly served: string;
  /** BullMQ queue prefix and name: BullMQ builds `<prefix>:<name>:<suffix>`. */
  readonly queuePrefix: string;
  readonly queueName: string;
  /** Prefix of client inboxes; the inbox of client C is `inboxPrefix + C`. */
  readonly inboxPrefix: string;
  /** The flight hash of one cache key. */
  flight(cacheKey: string): string;
  inbox(clientId: string): string;
  /** Results of `inbox(clientId)` handed to the client and not yet acknowledged. */
  inboxPending(clientId: string): string;
  /** A client's heartbeat: present while the client is alive. */
  clientAlive(clientId: string): string;
  /** Which items of a job's envelope were settled (one bit per item). */
  jobDone(jobId: string): string;
  /** Crash isolation records of a job re-run after its worker died: item index -> calls that never returned. */
  jobCrashes(jobId: string): string;
  /** BullMQ's hash of a job. */
  job(jobId: string): string;
}

export function modelKeys(model: string, prefix: string = DEFAULT_PREFIX): ModelKeys {
  const root = `${prefix}:{${model}}`;
  return Object.freeze({
    root,
    cacheLru: `${root}:cache:lru`,
    cacheVal: `${root}:cache:val`,
    cacheExp: `${root}:cache:exp`,
    cacheBytes: `${root}:cache:bytes`,
    stats: `${root}:stats`,
    statsLatency: `${root}:stats:latency`,
    queued: `${root}:queued`,
    cacheEpoch: `${root}:cache:epoch`,
    served: `${root}:served`,
    queuePrefix: prefix,
    queueName: `{${model}}`,
    inboxPrefix: `${root}:inbox:`,
    flight: (k: string) => `${root}:flight:${k}`,
    inbox: (c: string) => `${root}:inbox:${c}`,
    inboxPending: (c: string) => `${root}:inbox:${c}:pending`,
    clientAlive: (c: string) => `${root}:client:${c}`,
    jobDone: (j: string) => `${root}:done:${j}`,
    jobCrashes: (j: string) => `${root}:crash:${j}`,
    job: (j: string) => `${root}:${j}`,
  });
}

/**
 * The Redis key layout. A model's queue is split into `queueShards` shards
 * (default 1). Every key of one shard shares one hash tag, so each multi-key
 * Lua script and pipeline stays in one slot and is valid on Redis Cluster:
 * with one shard the tag is `{<model>}`; with n > 1 shard s has the tag
 * `{<model>~<s>~<salt>}` (`~` cannot occur in a model name), its salt chosen
 * so that the n shards' slots sit in the middle of n equal parts of the
 * slot space: on a cluster whose masters hold equal slot ranges (what
 * `redis-cli --cluster create` makes), n shards on n masters land one per
 * master. A request goes to the shard of its cache key, so its flight, its
 * cache entry and the settle that writes both stay together.
 *
 * Model-wide keys (all shards): `inferq:{m}:stats`, `inferq:{m}:stats:latency`,
 * `inferq:{m}:shards` (the shard count every client and worker must agree on)
 * and `inferq:{m}:workers` (the live workers, which `inferq set-shards` checks).
 * The rest is per shard, `<root>` being `inferq:{<shard tag>}`:
 *
 * | key                            | type | holds                                                        |
 * |--------------------------------|------|--------------------------------------------------------------|
 * | inferq:{m}:shards              | STR  | the model's queueShards (recorded by the first worker)       |
 * | inferq:{m}:shards:proposed     | STR  | the count of the first client that started before any worker |
 * | inferq:{m}:workers             | ZSET | live workers: worker id -> expiry (ms, Redis TIME), beat 1/s |
 * | inferq:{m}:stats               | HASH | counters (requests, cache_hits, ...)                         |
 * | inferq:{m}:stats:latency       | HASH | latency histogram buckets                                    |
 * | <root>:cache:lru               | ZSET | cache key -> last access (µs, Redis TIME)                    |
 * | <root>:cache:val               | HASH | cache key -> output JSON                                     |
 * | <root>:cache:exp               | ZSET | cache key -> expiry (ms), only with a TTL                    |
 * | <root>:cache:bytes             | STR  | bytes held: sum of value + key lengths                       |
 * | <root>:cache:hits              | ZSET | cache key -> time of a client's hit (µs), folded into lru    |
 * |                                |      | by workers (clients may not write the cache)                 |
 * | <root>:flight:<cache key>      | HASH | one single flight: id, own, dl, w:<waiter>...                |
 * | <root>:inbox:<client>          | LIST | results for one client process                               |
 * | <root>:inbox:<client>:pending  | LIST | results handed out, not yet acknowledged                     |
 * | <root>:client:<client>         | STR  | a client's heartbeat (TTL: HEARTBEAT_TTL_MS)                 |
 * | <root>:done:<job id>           | STR  | bitmap of the job's envelope items settled                   |
 * | <root>:crash:<job id>          | HASH | item index -> model calls it was alone in that never returned |
 * | inferq:{m}:room                | ZSET | the queue ledger: one member per request admitted, not yet   |
 * |                                |      | answered (maxQueueLength bounds its ZCARD)                   |
 * | inferq:{m}:room:leases         | ZSET | client id -> lease expiry: a dead client's places go back    |
 * | inferq:{m}:room:counts         | HASH | tenant -> places it holds in the ledger                      |
 * | inferq:{m}:room:clients        | HASH | client id -> its tenant (for a dead client's places)         |
 * | inferq:{m}:stats:tenants       | HASH | `<tenant>|<counter>`: requests, cache_hits, refused, ...    |
 * | inferq:{m}:stats:tenants:latency | HASH | `<tenant>|le_*`: each tenant's latency histogram           |
 * | inferq:{m}:limits              | HASH | maxQueueLength: the operator's bound (set by workers, CLI)   |
 * | inferq:{m}:tenants             | HASH | `<tenant>|weight`, `<tenant>|maxQueued` (operator, CLI)       |
 * | <root>:cache:epoch             | STR  | bumped by every clearCache (clients' local caches follow)    |
 * | <root>:served                  | STR  | `<modelVersion>/<quantization>` the workers serve            |
 * | <root>:<bullmq keys>           | -    | the shard's BullMQ queue (prefix inferq, name {<shard tag>}) |
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
  /** The hash-tagged root of the shard, e.g. `inferq:{sentiment}`. */
  readonly root: string;
  readonly cacheLru: string;
  readonly cacheVal: string;
  readonly cacheExp: string;
  /** The cache's size in bytes (STRING integer): the sum of each entry's value and key lengths. */
  readonly cacheBytes: string;
  /** Cache key -> time of its last hit by a client (µs): clients may not write the recency ZSET, workers fold this into it. */
  readonly cacheHits: string;
  /** Model-wide (every shard's keys name the same stats hashes). */
  readonly stats: string;
  readonly statsLatency: string;
  /** Model-wide: the queue ledger, one member per request admitted and not yet answered (what maxQueueLength bounds). */
  readonly room: string;
  /** Model-wide: client id -> lease expiry of its places in the ledger. */
  readonly roomLeases: string;
  /** Model-wide: tenant -> places it holds in the ledger. */
  readonly roomCounts: string;
  /** Model-wide: client id -> its tenant, for giving back a dead client's places. */
  readonly roomClients: string;
  /** Model-wide: per-tenant counters (`<tenant>|<counter>`). */
  readonly statsTenants: string;
  /** Model-wide: per-tenant latency histograms (`<tenant>|le_*`). */
  readonly statsTenantLatency: string;
  /** Model-wide: the operator's limits (`maxQueueLength`), set by workers and `inferq limits`. */
  readonly limits: string;
  /** Model-wide: tenants' weights and caps (`<tenant>|weight`, `<tenant>|maxQueued`), set by `inferq tenants`. */
  readonly tenants: string;
  /** Bumped by every clearCache: in-process caches of clients drop their entries when it changes. */
  readonly cacheEpoch: string;
  /** `<modelVersion>/<quantization>` the workers serve (set by each worker at start). */
  readonly served: string;
  /** Model-wide: fingerprints (cache keys) of inputs convicted of crashing the worker process -> crashes. */
  readonly convicted: string;
  /** Model-wide: the live workers, worker id -> heartbeat expiry (see worker-registry.ts). */
  readonly workers: string;
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
  /** One of BullMQ's keys of the shard's queue (`wait`, `active`, `delayed`, ...). */
  queue(suffix: string): string;
}

/** Most shards of one model. */
export const MAX_QUEUE_SHARDS = 64;

/** The model-wide keys and those of a model with one shard. */
export function modelKeys(model: string, prefix: string = DEFAULT_PREFIX): ModelKeys {
  return keysOf(`${prefix}:{${model}}`, `${prefix}:{${model}}`, prefix, `{${model}}`);
}

/** The model-wide key holding the model's shard count. */
export function shardCountKey(model: string, prefix: string = DEFAULT_PREFIX): string {
  return `${prefix}:{${model}}:shards`;
}

/**
 * The model-wide key where a client that starts before any worker records
 * the shard count it was configured with: clients may not write the count
 * itself (docs/acl), and a worker starting later must agree with them.
 */
export function shardProposalKey(model: string, prefix: string = DEFAULT_PREFIX): string {
  return `${prefix}:{${model}}:shards:proposed`;
}

/** The keys of each shard of a model, shard 0 first. One shard: `[modelKeys(model, prefix)]`. */
export function shardKeys(model: string, prefix: string, shards: number): ModelKeys[] {
  if (!Number.isInteger(shards) || shards < 1 || shards > MAX_QUEUE_SHARDS) throw new RangeError(`queueShards must be an integer in 1..${MAX_QUEUE_SHARDS}, got ${shards}.`);
  if (shards === 1) return [modelKeys(model, prefix)];
  const modelRoot = `${prefix}:{${model}}`;
  return Array.from({ length: shards }, (_, s) => {
    const tag = `{${shardTag(model, s, shards)}}`;
    return keysOf(`${prefix}:${tag}`, modelRoot, prefix, tag);
  });
}

/** Hash slots of Redis Cluster. */
const SLOTS = 16384;

/**
 * The hash tag of shard `s` of `n` (n > 1): `<model>~<s>~<salt>`, the first
 * salt whose slot falls in the middle half of the s-th of n equal parts of
 * the slot space. Deterministic: every client and worker derives the same.
 */
export function shardTag(model: string, s: number, n: number): string {
  const width = SLOTS / n;
  const lo = Math.floor(s * width + width / 4);
  const hi = Math.ceil(s * width + (3 * width) / 4);
  for (let salt = 0; ; salt++) {
    const tag = `${model}~${s}~${salt}`;
    const slot = keySlot(tag);
    if (slot >= lo && slot < hi) return tag;
  }
}

/** The shard of a request: by its cache key (identical inputs meet in one shard), else round robin by `seq`. */
export function shardOf(cacheKey: string | undefined, shards: number, seq: number): number {
  if (shards === 1) return 0;
  if (cacheKey === undefined) return seq % shards;
  // Cache keys are hex SHA-256: their first 8 digits are uniform.
  return Number.parseInt(cacheKey.slice(0, 8), 16) % shards;
}

/** Redis Cluster's hash slot of a key with no `{...}` in it: CRC16 (XMODEM) mod 16384. */
export function keySlot(key: string): number {
  let crc = 0;
  for (const byte of Buffer.from(key, 'utf8')) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % SLOTS;
}

function keysOf(root: string, modelRoot: string, prefix: string, queueName: string): ModelKeys {
  return Object.freeze({
    root,
    cacheLru: `${root}:cache:lru`,
    cacheVal: `${root}:cache:val`,
    cacheExp: `${root}:cache:exp`,
    cacheBytes: `${root}:cache:bytes`,
    cacheHits: `${root}:cache:hits`,
    stats: `${modelRoot}:stats`,
    statsLatency: `${modelRoot}:stats:latency`,
    statsTenants: `${modelRoot}:stats:tenants`,
    statsTenantLatency: `${modelRoot}:stats:tenants:latency`,
    convicted: `${modelRoot}:convicted`,
    room: `${modelRoot}:room`,
    roomLeases: `${modelRoot}:room:leases`,
    roomCounts: `${modelRoot}:room:counts`,
    roomClients: `${modelRoot}:room:clients`,
    limits: `${modelRoot}:limits`,
    tenants: `${modelRoot}:tenants`,
    workers: `${modelRoot}:workers`,
    cacheEpoch: `${root}:cache:epoch`,
    served: `${root}:served`,
    queuePrefix: prefix,
    queueName,
    inboxPrefix: `${root}:inbox:`,
    flight: (k: string) => `${root}:flight:${k}`,
    inbox: (c: string) => `${root}:inbox:${c}`,
    inboxPending: (c: string) => `${root}:inbox:${c}:pending`,
    clientAlive: (c: string) => `${root}:client:${c}`,
    jobDone: (j: string) => `${root}:done:${j}`,
    jobCrashes: (j: string) => `${root}:crash:${j}`,
    job: (j: string) => `${root}:${j}`,
    queue: (suffix: string) => `${prefix}:${queueName}:${suffix}`,
  });
}

/**
 * The shard count of a model, agreed on by every client and worker: each
 * routes a request to a shard by its cache key, so two processes with
 * different counts would look for one request's cache entry, flight and
 * results in different places. The first process to start records its
 * count (`inferq:{m}:shards`, no TTL; a client proposes it instead, see
 * `agreeOnShards`); any later one with another count is refused with INFERQ_QUEUE_SHARDS_MISMATCH before it takes or sends work.
 * Changing the count of a running model: stop its clients and workers, let
 * the queue drain, then `inferq set-shards` (which refuses while any shard
 * holds work or any client or worker is alive).
 */
import { ErrorCode, InferqError, QueueShardsMismatchError, RedisUnavailableError, ShardCountInvalidError } from '../errors.js';
import { countKeys, type RedisClient } from '../redis-connection.js';
import { callScript } from '../lua-scripts.js';
import { DEFAULT_PREFIX, MAX_QUEUE_SHARDS, modelKeys as modelKeysOf, shardCountKey, shardKeys as shardKeysOf, shardProposalKey, type ModelKeys } from './keys.js';
import { WORKER_BEAT_TTL_MS, liveWorkers } from './worker-registry.js';

/**
 * The shard count a GET of the key returned: undefined when none is
 * recorded; a ShardCountInvalidError when the key holds anything but an
 * integer 1..MAX_QUEUE_SHARDS in plain digits (`Number()` would take
 * ' 3', '3.0' or '' and turn 'garbage' into NaN).
 */
export function parseShardCount(raw: string | null, model: string, prefix: string = DEFAULT_PREFIX): number | undefined {
  if (raw === null) return undefined;
  const n = /^[1-9][0-9]{0,2}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 1 && n <= MAX_QUEUE_SHARDS)) throw new ShardCountInvalidError(model, shardCountKey(model, prefix), raw, MAX_QUEUE_SHARDS);
  return n;
}

/**
 * Who agrees on the count: a worker records it (`inferq:{m}:shards`); a
 * client may not write that key (docs/acl/inferq-client.acl), so one that
 * starts before any worker records its count as a proposal
 * (`inferq:{m}:shards:proposed`), which later clients and the first worker
 * must agree with. A forged proposal can only stop a worker from starting
 * (INFERQ_QUEUE_SHARDS_MISMATCH, fixed by `inferq set-shards`), never route
 * a request elsewhere: the recorded count wins once a worker has written it.
 */
export type ShardAgreementRole = 'client' | 'worker';

/**
 * Checks `shards` against the model's recorded count, recording it (worker)
 * or proposing it (client) when none is; rejects with
 * QueueShardsMismatchError when another count is recorded or proposed, and
 * with a RedisUnavailableError when Redis cannot say (down, or refusing
 * writes). Default role 'client': it writes only the proposal.
 */
export async function agreeOnShards(redis: RedisClient, model: string, prefix: string, shards: number, role: ShardAgreementRole = 'client'): Promise<void> {
  const key = shardCountKey(model, prefix);
  const proposalKey = shardProposalKey(model, prefix);
  let raw: string | null;
  let proposed: string | null = null;
  try {
    raw = await redis.get(key);
    if (raw === null && role === 'worker') {
      // A count proposed by clients that started first binds the first worker as it bound them.
      proposed = await redis.get(proposalKey);
      if (proposed === null || parseShardCount(proposed, model, prefix) === shards) {
        await redis.set(key, String(shards), 'NX');
        raw = await redis.get(key);
      }
    } else if (raw === null) {
      await redis.set(proposalKey, String(shards), 'NX');
      proposed = await redis.get(proposalKey);
    }
  } catch (err) {
    if (err instanceof InferqError) throw err;
    throw new RedisUnavailableError(`Reading the queue shard count of model '${model}' failed: ${(err as Error).message}`, { cause: err, details: { model } });
  }
  // A count deleted in between (set-shards) reads as none: take ours.
  const recorded = parseShardCount(raw, model, prefix) ?? parseShardCount(proposed, model, prefix);
  if (recorded !== undefined && recorded !== shards) throw new QueueShardsMismatchError(model, shards, recorded);
}

/**
 * The model's recorded shard count; else the count proposed by clients that
 * started before any worker; 1 when neither (a model that never ran
 * sharded). Rejects an invalid one (ShardCountInvalidError).
 */
export async function readShardCount(redis: RedisClient, model: string, prefix: string = DEFAULT_PREFIX): Promise<number> {
  const [recorded, proposed] = await Promise.all([redis.get(shardCountKey(model, prefix)), redis.get(shardProposalKey(model, prefix))]);
  return parseShardCount(recorded, model, prefix) ?? parseShardCount(proposed, model, prefix) ?? 1;
}

/**
 * Clears the result cache of every shard (5 keys each: the four cache keys
 * and clients' recorded hits; one UNLINK per shard: each shard's keys share
 * a slot) and bumps each shard's cache epoch, which every client's
 * in-process cache follows within a tick. An operator action: the client
 * role may not write the cache or the epoch, and a NOPERM becomes
 * INFERQ_REDIS_PERMISSION_DENIED naming the way to do it.
 */
export async function clearShardCaches(redis: RedisClient, shards: readonly ModelKeys[]): Promise<void> {
  try {
    await Promise.all(
      shards.map(async (k) => {
        await redis.unlink(k.cacheLru, k.cacheVal, k.cacheExp, k.cacheBytes, k.cacheHits);
        await redis.incr(k.cacheEpoch);
      }),
    );
  } catch (err) {
    if (!/NOPERM/.test((err as Error)?.message ?? '')) throw err;
    throw new InferqError(
      ErrorCode.REDIS_PERMISSION_DENIED,
      `Clearing the cache of ${shards[0]?.root ?? 'the model'} was refused by Redis (${(err as Error).message}): it is an operator action. Run 'inferq clear-cache' with the worker role's credentials (docs/acl/inferq-worker.acl).`,
      { cause: err, details: { missing: ['UNLINK/INCR on the cache keys'] } },
    );
  }
}

/**
 * Records a new shard count for a model, refused (INFERQ_QUEUE_SHARDS_MISMATCH)
 * while any current shard holds a job (waiting, running, delayed, paused), a
 * client is alive or a worker is: requests in the old shards would never be
 * found, and a running worker keeps consuming the old shards. The workers
 * are checked and the count set in one script (shards-set-2.lua), so a
 * worker starting at that moment either is seen or reads the new count.
 */
export async function setShardCount(redis: RedisClient, model: string, prefix: string, shards: number): Promise<void> {
  // An invalid recorded count is what set-shards repairs: its jobs are looked for in the one-shard layout.
  const current = await readShardCount(redis, model, prefix).catch((err: unknown) => {
    if (err instanceof ShardCountInvalidError) return 1;
    throw err;
  });
  const shardList = shardKeysOf(model, prefix, current);
  let jobs = 0;
  for (const k of shardList) {
    const q = k.queue;
    const counts = await Promise.all([redis.llen(q('wait')), redis.llen(q('active')), redis.zcard(q('delayed')), redis.zcard(q('prioritized')), redis.llen(q('paused'))]);
    jobs += counts.reduce((a, b) => a + b, 0);
  }
  // A client beats in every shard: count shard 0's heartbeats.
  const alive = await countKeys(redis, `${(shardList[0] as ModelKeys).root}:client:*`);
  const refuse = (workers: readonly string[]) =>
    new InferqError(
      ErrorCode.QUEUE_SHARDS_MISMATCH,
      `Model '${model}' still has ${jobs} job(s) and ${alive} live client(s) in its ${current} shard(s), and ${workers.length} live worker(s)${workers.length > 0 ? ` (${workers.join(', ')})` : ''}; ` +
        `stop its clients and workers and let the queue drain before changing queueShards. A worker killed without stopping stays listed until its heartbeat expires (${WORKER_BEAT_TTL_MS / 1000} s).`,
      { details: { model, jobs, clients: alive, workers, queueShards: current } },
    );
  if (jobs > 0 || alive > 0) throw refuse(await liveWorkers(redis, model, prefix));
  const { workers: workersKey } = modelKeysOf(model, prefix);
  const live = (await callScript(redis, 'shards-set', [workersKey, shardCountKey(model, prefix)], [String(shards)])) as string[];
  if (live.length > 0) throw refuse(live);
  // The operator's count supersedes whatever a client proposed.
  await redis.del(shardProposalKey(model, prefix));
}

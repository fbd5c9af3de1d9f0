/**
 * Whether a model has left any trace in Redis, for the CLI: a model name or
 * prefix with a typo, or the wrong Redis, would otherwise read as a model
 * with all-zero statistics.
 */
import { modelKeys, type RedisClient } from '@inferq/core';
import { shardCountKey } from '@inferq/core/protocol';

/**
 * True when any model-wide key exists: the shard count (recorded by the first
 * client or worker to start, and kept), the two stats hashes, the convicted
 * inputs. They share the model's hash tag, so one EXISTS serves a cluster too.
 */
export async function modelHasKeys(redis: RedisClient, model: string, prefix: string): Promise<boolean> {
  const keys = modelKeys(model, prefix);
  return (await redis.exists(shardCountKey(model, prefix), keys.stats, keys.statsLatency, keys.convicted)) > 0;
}

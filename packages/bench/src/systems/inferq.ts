/**
 * The system under test: `InferenceClient` in the client processes, the real
 * `inferq-worker` CLI (testkit's WORKER_CLI: its sources, through tsx) as worker processes, with the
 * same model built-ins the baselines load in-process.
 */
import { readStats } from '@inferq/core';
import { WORKER_CLI } from '@inferq/testkit';
import { MODEL_MODULE, type ClientConfig, type ScenarioSettings } from '../settings.js';
import { SYSTEM_LABELS } from './registry.js';
import type { SystemDefinition, Transport } from './system.js';

async function connectClient(cfg: ClientConfig): Promise<Transport> {
  // Imported where it is used: the parent process only needs this module's command lines and readStats.
  const { InferenceClient } = await import('@inferq/client');
  const client = new InferenceClient<number[], unknown>({
    redis: cfg.clusterNodes ? { cluster: cfg.clusterNodes } : cfg.redisUrl,
    model: cfg.queueName,
    prefix: cfg.namespace,
    ...(cfg.queueShards !== undefined ? { queueShards: cfg.queueShards } : {}),
    config: {
      ...(cfg.libraryDefaults ? {} : { enableCaching: cfg.caching, cacheMaxSize: cfg.cacheMaxSize }),
      ...(cfg.maxQueueLength > 0 ? { maxQueueLength: cfg.maxQueueLength } : {}),
    },
    defaultTimeoutMs: cfg.requestTimeoutMs,
    ...(cfg.localCache ? { localCache: {} } : {}),
    ...(cfg.tenant !== undefined ? { tenant: cfg.tenant } : {}),
    ...(cfg.priority !== undefined ? { priority: cfg.priority } : {}),
  });
  // The client connects lazily; one round trip now keeps connection setup out of the warm-up.
  await client.stats();
  return {
    async send(input) {
      const r = await client.infer(input);
      return { cached: r.cached };
    },
  };
}

/** The `inferq-worker` command line of a scenario: the bench's settings, or the CLI's defaults (`libraryDefaults`). */
export function workerArgs(s: ScenarioSettings): string[] {
  const redis = s.clusterNodes ? ['--redis-cluster', s.clusterNodes.join(',')] : ['--redis', s.redisUrl];
  const args = ['--model', s.queueName, '--module', MODEL_MODULE[s.model], ...redis, '--prefix', s.namespace];
  if (s.queueShards !== undefined) args.push('--queue-shards', String(s.queueShards));
  if (!s.libraryDefaults) {
    args.push(
      '--max-batch-size', String(s.maxBatchSize),
      '--batch-timeout-ms', String(s.batchTimeoutMs),
      '--num-workers', String(s.numWorkers),
      '--enable-caching', String(s.caching),
      '--cache-max-size', String(s.cacheMaxSize),
    );
  }
  if (s.batchPolicy) args.push('--batch-policy', s.batchPolicy);
  if (s.jobConcurrency !== undefined) args.push('--job-concurrency', String(s.jobConcurrency));
  args.push(...s.workerArgs);
  return args;
}

export const inferq: SystemDefinition = {
  id: 'inferq',
  label: SYSTEM_LABELS.inferq,
  workerCommand: (s) => ({ script: WORKER_CLI, args: workerArgs(s) }),
  async readCounters(redis, s) {
    const st = await readStats(redis, s.queueName, s.namespace);
    return {
      batches: st.totalBatches,
      items: st.batchItems,
      cacheHits: st.cacheHits,
      cacheMisses: st.cacheMisses,
      coalesced: st.coalesced,
      workerCacheHits: st.workerCacheHits,
      errors: st.errors,
      timeouts: st.timeouts,
      deadlineDrops: st.deadlineDrops,
      // The stats keep the sum and the batch count; their ratio is what readStats returns.
      modelMs: st.avgModelTimeMs * st.totalBatches,
    };
  },
  connectClient,
};

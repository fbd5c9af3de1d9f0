/**
 * Which Redis failures are worth sending a request again for, and when.
 *
 * During a Redis Cluster failover (a master dies, its replica is promoted)
 * or a primary's restart, a few commands fail with errors that say "not now"
 * rather than "never": the node's connection closed under them, the cluster
 * reports CLUSTERDOWN or TRYAGAIN, a demoted node answers READONLY, a
 * restarting one LOADING. A request caught there is sent again after a short
 * backoff, for as long as its caller still waits and at most RETRY_WINDOW_MS
 * after its first failure: a failover is answered late rather than failed,
 * while a Redis that stays down still fails its callers within a few seconds
 * rather than at their (possibly long) timeouts.
 *
 * Anything else (permissions, OOM, WRONGTYPE, a script's own error, a
 * broken credential) fails at once: sending it again would fail again.
 */

/** Error messages (ioredis's and Redis's own) of failures that can pass. */
const TRANSIENT = /Connection is closed|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|READONLY|LOADING|ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|Failed to refresh slots cache|None of startup nodes is available|Too many Cluster redirections|Cluster isn't ready/;

/** How long after a request's first transient failure it may still be sent again. */
export const RETRY_WINDOW_MS = 5_000;

/** Whether `err` (a raw Redis / ioredis error) can pass by itself. */
export function isTransientRedisError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as Error & { code?: unknown }).code;
  return TRANSIENT.test(err.message) || (typeof code === 'string' && TRANSIENT.test(code));
}

/** Delay before the n-th retry (1-based): 50, 100, 200, 400, 800, then 1000 ms. */
export function retryDelayMs(attempt: number): number {
  return Math.min(1000, 50 * 2 ** Math.max(0, attempt - 1));
}

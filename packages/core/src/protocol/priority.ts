/**
 * The order in which workers serve queued requests: priority classes, and
 * fair service between tenants inside a class, both carried by BullMQ's own
 * job priority (one number per job; BullMQ serves the lowest first, FIFO
 * among equals, from one sorted set per queue).
 *
 * A job's priority is `band(class) + rank`:
 * - the band orders the classes: every `high` job before every `normal`
 *   before every `low` (bands are BAND_SIZE apart, ranks stay below it);
 * - the rank orders tenants inside a class: a tenant's n-th request waiting
 *   gets rank ceil(n / weight), so a tenant with few requests waiting goes
 *   ahead of a tenant with a backlog, and two backlogged tenants are served in
 *   proportion to their weights (weighted round-robin by position). n is the
 *   tenant's count in the model's queue ledger when the queue is bounded (all
 *   clients of the tenant together), else the sending client's own requests
 *   in flight.
 *
 * Strict classes could starve a class below a constant stream above it, so
 * workers age jobs (priority-aging.ts): a job that has waited `agingMs` in
 * its band moves to the front of the band above, so a `low` request waits at
 * most about two aging periods plus the work aged before it.
 *
 * Every job is given a priority (never 0): BullMQ serves its wait list (jobs
 * without one) before any prioritized job, which would put unprioritized
 * traffic ahead of `high`.
 */
import { callScript } from '../lua-scripts.js';
import type { RedisClient } from '../redis-connection.js';

export const PRIORITIES = ['high', 'normal', 'low'] as const;
export type Priority = (typeof PRIORITIES)[number];

/** Distance between classes; BullMQ accepts priorities up to 2^21. */
export const BAND_SIZE = 2 ** 19;
const BAND_OF: Record<Priority, number> = { high: 0, normal: 1, low: 2 };
/** The largest rank: a deeper backlog shares the last place of its band. */
export const MAX_RANK = BAND_SIZE - 2;

/** BullMQ's priority for a job of class `priority` whose best request has `rank`. */
export function jobPriority(priority: Priority, rank: number): number {
  const r = Number.isFinite(rank) && rank > 0 ? Math.min(Math.floor(rank), MAX_RANK) : 0;
  return 1 + BAND_OF[priority] * BAND_SIZE + r;
}

/** The rank of a tenant's n-th request waiting (n >= 1) under `weight` (> 0; else 1). */
export function fairRank(n: number, weight: number): number {
  const w = Number.isFinite(weight) && weight > 0 ? weight : 1;
  return Math.ceil(Math.max(0, n) / w);
}

/** The class of a BullMQ priority given by `jobPriority` (0, from an older client: `high`, as BullMQ serves it first). */
export function classOf(jobPriorityValue: number): Priority {
  const band = Math.floor(Math.max(0, jobPriorityValue - 1) / BAND_SIZE);
  return band <= 0 ? 'high' : band === 1 ? 'normal' : 'low';
}

/** Where an aged job goes: the front of the band above its own (undefined for `high`: nothing above). */
export function agedPriority(jobPriorityValue: number): number | undefined {
  const c = classOf(jobPriorityValue);
  if (c === 'high') return undefined;
  return jobPriority(c === 'low' ? 'normal' : 'high', 0);
}

/** The lowest BullMQ priority that can age (the start of the `normal` band). */
export const AGEABLE_FROM = jobPriority('normal', 0);

/** One window of `agedJobs`: the jobs old enough to age, and where the next window starts (0: from the band's start). */
export interface AgedJobs {
  jobs: Array<{ id: string; priority: number }>;
  nextOffset: number;
}

/**
 * Jobs of one band of a BullMQ queue added at or before `cutoff` (ms), in a
 * window of `window` jobs from `offset` (priority-aged-1.lua). Read only.
 */
export async function agedJobs(
  redis: RedisClient,
  q: { prioritizedKey: string; jobKeyPrefix: string; band: Exclude<Priority, 'high'>; offset: number; window: number; cutoff: number },
): Promise<AgedJobs> {
  const first = jobPriority(q.band, 0);
  // Scores are priority * 2^32 + counter (BullMQ's getPriorityScore): exact in a double up to 2^53.
  const reply = (await callScript(redis, 'priority-aged', [q.prioritizedKey], [q.jobKeyPrefix, String(first * 2 ** 32), String((first + BAND_SIZE) * 2 ** 32), String(q.offset), String(q.window), String(q.cutoff)])) as string[];
  const jobs: AgedJobs['jobs'] = [];
  for (let i = 1; i + 1 < reply.length; i += 2) jobs.push({ id: String(reply[i]), priority: Number(reply[i + 1]) });
  return { jobs, nextOffset: Number(reply[0]) };
}

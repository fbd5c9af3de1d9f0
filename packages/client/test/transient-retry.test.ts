/**
 * What the client sends again after a Redis failure, and when: only the
 * failures that pass by themselves (a failover, a restart), never a refusal
 * that would fail again. (The behaviour through a real failover is in
 * packages/integration/test/redis-cluster.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { ReplyError } from 'ioredis';
import { isTransientRedisError, retryDelayMs } from '../src/transient-retry.js';

describe('isTransientRedisError', () => {
  it('takes what a failover or restart raises', () => {
    for (const msg of ['Connection is closed.', 'CLUSTERDOWN The cluster is down', 'TRYAGAIN Multiple keys request during rehashing of slot', "READONLY You can't write against a read only replica.", 'LOADING Redis is loading the dataset in memory', 'MASTERDOWN Link with MASTER is down', 'Failed to refresh slots cache.', 'Too many Cluster redirections. Last error: Error: Connection is closed.']) {
      expect(isTransientRedisError(new ReplyError(msg)), msg).toBe(true);
    }
    expect(isTransientRedisError(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))).toBe(true);
  });

  it('refuses what would fail again, and anything that is not an Error', () => {
    for (const msg of ["OOM command not allowed when used memory > 'maxmemory'.", 'NOPERM this user has no permissions to run the evalsha command', 'WRONGTYPE Operation against a key holding the wrong kind of value', 'ERR settle: malformed item 3', 'WRONGPASS invalid username-password pair']) {
      expect(isTransientRedisError(new ReplyError(msg)), msg).toBe(false);
    }
    expect(isTransientRedisError('Connection is closed.')).toBe(false);
    expect(isTransientRedisError(undefined)).toBe(false);
  });
});

describe('retryDelayMs', () => {
  it('doubles from 50 ms and stays at 1 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map(retryDelayMs)).toEqual([50, 100, 200, 400, 800, 1000, 1000, 1000]);
  });
});

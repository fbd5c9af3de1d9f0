/**
 * The queue ledger (room-reserve / settle / room-release) against a
 * reference model, over random interleavings of what clients and workers
 * do: admissions (first sends and resends of the same request id), settles
 * (first runs, re-runs of a job after a lost lock, a resend's new job),
 * releases of requests never sent, and clients that die holding places.
 *
 * The model is a set of request ids holding a place, and the set of
 * (job, item) pairs settled. After every step the ledger's length must equal
 * the model's, and every admission answer must match: a request counts at
 * most once and gives its place back at most once, whatever the order.
 * Both placements of the ledger are covered: written by the settle script
 * itself (one Redis, or one shard), and named by it for a second call (a
 * cluster with several shards).
 */
import type { Redis } from 'ioredis';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestRedis, type TestRedis } from '../../testkit/src/index.js';
import { modelKeys } from '../src/protocol/keys.js';
import { releaseRoom, reserveRoom } from '../src/protocol/queue-room.js';
import { execSettle, type SettleOptions } from '../src/protocol/settle.js';

let redis: TestRedis;
let conn: Redis;
beforeAll(async () => {
  redis = await startTestRedis();
  conn = redis.connect();
});
afterAll(() => redis.cleanup());

const CLIENTS: readonly string[] = ['ca-1-aa', 'cb-2-bb', 'cc-3-cc'];
const MAX = 6;

type Cmd =
  | { kind: 'reserve'; client: number; reqs: number[] }
  | { kind: 'settle'; client: number; req: number; job: number }
  | { kind: 'release'; client: number; reqs: number[] }
  | { kind: 'die'; client: number };

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  fc.record({ kind: fc.constant('reserve' as const), client: fc.nat(2), reqs: fc.array(fc.nat(5), { minLength: 0, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('settle' as const), client: fc.nat(2), req: fc.nat(5), job: fc.nat(2) }),
  fc.record({ kind: fc.constant('release' as const), client: fc.nat(2), reqs: fc.array(fc.nat(5), { minLength: 1, maxLength: 3 }) }),
  fc.record({ kind: fc.constant('die' as const), client: fc.nat(2) }),
);

const id = (client: number, req: number) => `${CLIENTS[client]}.${req.toString(36)}`;

describe('queue ledger', () => {
  it.each([true, false])('matches the reference model (settle writes the ledger itself: %s)', async (inScript) => {
    await fc.assert(
      fc.asyncProperty(fc.array(cmdArb, { minLength: 1, maxLength: 25 }), async (cmds) => {
        const keys = modelKeys('ledger', redis.newPrefix());
        const settle: SettleOptions = { maxSize: 10, maxBytes: 1 << 20, cacheTtlMs: 0, inboxTtlMs: 60_000, doneTtlMs: 60_000, room: { keys, inScript } };
        const held = new Set<string>();
        const done = new Set<string>();
        const dead = new Set<number>();
        for (const c of cmds) {
          if (c.kind === 'reserve') {
            // A dead client sends nothing; everyone else's reserve reclaims what dead clients held.
            if (dead.has(c.client)) continue;
            for (const d of dead) for (const h of [...held]) if (h.startsWith(`${CLIENTS[d]}.`)) held.delete(h);
            const ids = c.reqs.map((r) => id(c.client, r));
            const expected = ids.map((x) => {
              if (held.has(x)) return true;
              if (held.size < MAX) {
                held.add(x);
                return true;
              }
              return false;
            });
            const r = await reserveRoom(conn, keys, { client: CLIENTS[c.client] as string, requestIds: ids, clientBound: MAX });
            expect(r.decisions.map((d) => d === 1)).toEqual(expected);
          } else if (c.kind === 'settle') {
            // The item of request `req` in job `job` (a re-run of the same job, or a resend's new job).
            const rid = id(c.client, c.req);
            const jobId = `j${c.client}-${c.job}`;
            const bit = `${jobId}/${c.req}`;
            if (!done.has(bit)) {
              done.add(bit);
              held.delete(rid);
            }
            await execSettle(conn, keys, [{ requestId: rid, client: CLIENTS[c.client] as string, job: { id: jobId, index: c.req }, payload: '{"ok":1,"output":1}', counted: true }], settle);
          } else if (c.kind === 'release') {
            const ids = c.reqs.map((r) => id(c.client, r));
            for (const x of ids) held.delete(x);
            await releaseRoom(conn, keys, 'default', ids);
          } else {
            // Dies: its lease is past (as if its TTL ran out with no renewal).
            dead.add(c.client);
            await conn.zadd(keys.roomLeases, '1', CLIENTS[c.client] as string);
          }
          expect(await conn.zcard(keys.room)).toBe(held.size);
        }
      }),
      { numRuns: 60 },
    );
  }, 120_000);

  it('a resend of an admitted request holds one place; its two settles give it back once', async () => {
    const keys = modelKeys('resend', redis.newPrefix());
    const settle: SettleOptions = { maxSize: 10, maxBytes: 1 << 20, cacheTtlMs: 0, inboxTtlMs: 60_000, doneTtlMs: 60_000, room: { keys, inScript: true } };
    await conn.zadd(keys.room, ...Array.from({ length: 1000 }, (_, i) => [0, `seed-${i}.0`]).flat());
    const rid = 'cl-1-ab.7';
    for (let resend = 0; resend < 4; resend++) {
      // Admitted again on each resend (DEADLINE_EXCEEDED, a lost job): one place at most.
      expect((await reserveRoom(conn, keys, { client: 'cl-1-ab', requestIds: [rid], clientBound: 5000 })).decisions).toEqual([1]);
      expect(await conn.zcard(keys.room)).toBe(1001);
      // The job's settle, and a re-run of the same job after a lost lock.
      for (let run = 0; run < 2; run++) {
        await execSettle(conn, keys, [{ requestId: rid, client: 'cl-1-ab', job: { id: `job-${resend}`, index: 0 }, payload: '{"ok":1,"output":1}', counted: true }], settle);
      }
      expect(await conn.zcard(keys.room)).toBe(1000);
    }
  });
});

/**
 * The one result listener of a client, reading its inbox list at least once,
 * on a connection of its own (a blocking command holds its connection).
 *
 * Workers RPUSH one element per settled batch. The loop takes elements with
 * `inbox-take` (up to 1000 at once), then blocks until the next one arrives
 * with a `BLMOVE` of the inbox onto itself, which moves nothing (so no list
 * is ever left without its TTL by a client that dies) and returns at once
 * when an element is already there: two commands per element.
 * A taken element moves to the client's pending list before it is handed
 * out, and stays there until the next take, which is sent only after the
 * element was handled. A connection lost in
 * between leaves the element in the pending list, and the loop re-reads that
 * list before anything else after every failure: results survive a dropped
 * connection and a Redis restart (with AOF). Handing an element out twice is
 * harmless: the client answers each request id once.
 *
 * A read whose connection closed is abandoned at once, and never sent again:
 * ioredis would otherwise resend it after the reconnect and hand its reply
 * to the old promise, hiding that the first one may have run — and a take
 * that runs twice acknowledges (deletes) what the first one moved to the
 * pending list without handing it out. The pending re-read covers what an
 * abandoned read did. A connection can also die silently (a network path
 * that swallows packets: no error, no close, a blocking read that never
 * returns): a watchdog bounds every read; past it the connection is dropped
 * and re-opened.
 */
import { isCluster, type RedisClient } from '@inferq/core';
import type { Logger } from '@inferq/core';
import { readPending, takeInbox, waitInbox, type ModelKeys } from '@inferq/core/protocol';

export interface ResultInboxOptions {
  redis: RedisClient;
  keys: ModelKeys;
  client: string;
  /** Called once per read with the elements of that read (each holds result lines). */
  onElements: (elements: string[]) => void;
  logger: Logger;
  /** TTL of the pending list, in ms. */
  pendingTtlMs: number;
}

/** BLMOVE timeout, in seconds: the loop wakes this often when idle. */
const BLOCK_SECONDS = 1;
/** Elements per take. */
const TAKE_COUNT = 1000;
/** How long past its own timeout a read may take before the connection is presumed dead. */
const WATCHDOG_SLACK_MS = 4000;
/** Failures are logged at most this often. */
const LOG_INTERVAL_MS = 5000;

export class ResultInbox {
  private running = false;
  private loop: Promise<void> | undefined;
  private lastErrorLog = 0;
  private suppressed = 0;
  /** Rejects the read in flight when the connection closes. */
  private abandon: ((err: Error) => void) | undefined;

  constructor(private readonly opts: ResultInboxOptions) {
    // See above: a read is sent once; after a reconnect the loop decides what to send.
    // (A cluster's node connections get it from createRedis's `sendOnce`.)
    if (!isCluster(opts.redis)) opts.redis.options.autoResendUnfulfilledCommands = false;
    opts.redis.on('close', () => this.abandon?.(new Error('inbox connection closed')));
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Ends the loop at once: the connection is dedicated to it, so closing it interrupts BLMOVE. */
  async stop(): Promise<void> {
    this.running = false;
    this.opts.redis.disconnect();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { redis, keys, client, pendingTtlMs } = this.opts;
    let recover = true;
    let failures = 0;
    while (this.running) {
      try {
        if (recover) {
          // Elements handed out before a failure may not have been handled: hand them out again.
          this.hand(await this.guarded(readPending(redis, keys, client), 0));
          recover = false;
        }
        const taken = await this.guarded(takeInbox(redis, keys, client, TAKE_COUNT, pendingTtlMs), 0);
        failures = 0;
        this.hand(taken);
        // A full take may have left more: take again at once. Otherwise the inbox is most likely
        // empty now (results arrive one element per batch): block until something arrives, moving
        // nothing (it returns at once if something already did), rather than send a take that
        // finds nothing first — one command fewer per element. What was just handed out stays in
        // the pending list until the next take acknowledges it.
        if (taken.length >= TAKE_COUNT) continue;
        await this.guarded(waitInbox(redis, keys, client, BLOCK_SECONDS), BLOCK_SECONDS * 1000);
      } catch (err) {
        if (!this.running) break;
        recover = true;
        failures++;
        this.logFailure(err, failures);
        await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** Math.min(failures, 5))));
      }
    }
  }

  private hand(elements: string[]): void {
    if (elements.length === 0) return;
    try {
      this.opts.onElements(elements);
    } catch (err) {
      this.opts.logger.error({ err }, 'handling inbox elements failed');
    }
  }

  /**
   * Bounds one read: it is abandoned when its connection closes, or past the
   * watchdog's bound (then the connection is dropped and re-opened).
   */
  private guarded<T>(read: Promise<T>, blockMs: number): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const watchdog = new Promise<never>((_, reject) => {
      this.abandon = reject;
      timer = setTimeout(() => {
        reject(new Error(`inbox read got no reply within ${blockMs + WATCHDOG_SLACK_MS} ms; reconnecting`));
        this.opts.redis.disconnect(true);
      }, blockMs + WATCHDOG_SLACK_MS);
    });
    // An abandoned read never settles (it is not resent); what it did is covered by the pending re-read.
    read.catch(() => undefined);
    return Promise.race([read, watchdog]).finally(() => {
      clearTimeout(timer);
      this.abandon = undefined;
    });
  }

  /** One line per interval, however fast reads fail. */
  private logFailure(err: unknown, failures: number): void {
    const now = Date.now();
    if (now - this.lastErrorLog < LOG_INTERVAL_MS) {
      this.suppressed++;
      return;
    }
    this.opts.logger.error({ err, inbox: this.opts.keys.inbox(this.opts.client), failures, suppressed: this.suppressed }, 'reading the result inbox failed; retrying');
    this.lastErrorLog = now;
    this.suppressed = 0;
  }
}

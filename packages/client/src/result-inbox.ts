/**
 * The one result listener of a client: a loop of `BLMPOP` on this client's
 * inbox list, on a connection of its own (a blocking command holds its
 * connection). Workers RPUSH one message per finished request; the loop hands
 * each to `onMessage`. Unlike BullMQ's QueueEvents, a client receives only
 * its own results, and nothing is dropped: a list keeps what was pushed until
 * it is read (workers set a TTL on the inbox so a dead client's inbox
 * disappears by itself).
 */
import type { Redis } from 'ioredis';
import { decodeInboxElement, type InboxMessage, type Logger } from '@inferq/core';

export interface ResultInboxOptions {
  redis: Redis;
  inboxKey: string;
  /** Called once per read with every well-formed message of that read. */
  onMessages: (messages: InboxMessage[]) => void;
  logger: Logger;
  /** Messages read per round trip. */
  batchCount?: number;
}

/** BLMPOP timeout, in seconds: the loop wakes this often when idle. */
const BLOCK_SECONDS = 1;

export class ResultInbox {
  private running = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly opts: ResultInboxOptions) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Ends the loop at once: the connection is dedicated to it, so closing it interrupts BLMPOP. */
  async stop(): Promise<void> {
    this.running = false;
    this.opts.redis.disconnect();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { redis, inboxKey, logger } = this.opts;
    const count = this.opts.batchCount ?? 1000;
    let failures = 0;
    while (this.running) {
      let reply: unknown;
      try {
        reply = await redis.call('BLMPOP', BLOCK_SECONDS, 1, inboxKey, 'LEFT', 'COUNT', count);
        failures = 0;
      } catch (err) {
        if (!this.running) break;
        failures++;
        logger.error({ err, inboxKey, failures }, 'reading the result inbox failed; retrying');
        await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** Math.min(failures, 5))));
        continue;
      }
      if (!Array.isArray(reply)) continue;
      const messages = reply[1] as unknown;
      if (!Array.isArray(messages)) continue;
      const decoded: InboxMessage[] = [];
      for (const raw of messages) {
        for (const m of decodeInboxElement(String(raw), (err, line) => logger.error({ err, inboxKey, message: line.slice(0, 200) }, 'dropping a malformed inbox message'))) {
          decoded.push(m);
        }
      }
      try {
        this.opts.onMessages(decoded);
      } catch (err) {
        logger.error({ err, inboxKey }, 'handling inbox messages failed');
      }
    }
  }
}

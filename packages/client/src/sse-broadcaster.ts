/**
 * `SseBroadcaster`: the open `text/event-stream` responses of the dashboard,
 * each sent every event, with two bounds so that readers cannot make the
 * server hold memory without limit:
 *
 * - at most `maxSubscribers` streams; one more is answered 503 with
 *   `Retry-After` (an EventSource retries by itself);
 * - a reader that does not keep up is dropped: when a write finds more than
 *   `maxBufferedBytes` waiting in the response, or when a write was refused
 *   (`res.write` returned false) and no 'drain' came within `drainTimeoutMs`.
 *   The kernel's socket buffers absorb a short stall before Node buffers
 *   anything, so a reader that is merely slow for a moment is never dropped;
 *   one whose tab sleeps or whose network is gone is, and its EventSource
 *   reconnects once it reads again.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ConfigError, type Logger } from '@inferq/core';

export interface SseLimits {
  /** Most open event streams; one more gets 503. Default 32. */
  maxSubscribers?: number | undefined;
  /** Bytes a stream may have waiting in Node (past the kernel's buffers) before it is dropped. Default 262144 (256 KiB: minutes of events). */
  maxBufferedBytes?: number | undefined;
  /** Longest wait for 'drain' after a refused write before the stream is dropped, ms. Default 15000. */
  drainTimeoutMs?: number | undefined;
}

export const SSE_DEFAULTS = Object.freeze({ maxSubscribers: 32, maxBufferedBytes: 256 * 1024, drainTimeoutMs: 15_000 });

interface Subscriber {
  res: ServerResponse;
  /** Set while a refused write waits for 'drain'. */
  drainTimer: NodeJS.Timeout | undefined;
}

export class SseBroadcaster {
  private readonly limits: { maxSubscribers: number; maxBufferedBytes: number; drainTimeoutMs: number };
  private readonly subscribers = new Map<ServerResponse, Subscriber>();

  constructor(
    limits: SseLimits,
    private readonly logger: Logger,
  ) {
    this.limits = {
      maxSubscribers: positiveInteger('maxSubscribers', limits.maxSubscribers ?? SSE_DEFAULTS.maxSubscribers),
      maxBufferedBytes: positiveInteger('maxBufferedBytes', limits.maxBufferedBytes ?? SSE_DEFAULTS.maxBufferedBytes),
      drainTimeoutMs: positiveInteger('drainTimeoutMs', limits.drainTimeoutMs ?? SSE_DEFAULTS.drainTimeoutMs),
    };
  }

  /** Open streams. */
  get size(): number {
    return this.subscribers.size;
  }

  /**
   * Answers the request with an event stream and sends it `first` (if any);
   * false (answered 503) when `maxSubscribers` streams are open.
   */
  subscribe(req: IncomingMessage, res: ServerResponse, first?: string): boolean {
    if (this.subscribers.size >= this.limits.maxSubscribers) {
      this.logger.warn({ maxSubscribers: this.limits.maxSubscribers, remote: req.socket.remoteAddress }, 'refused an event stream: maxSubscribers are open');
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '5' }).end(`too many event streams open (maxSubscribers ${this.limits.maxSubscribers})\n`);
      return false;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    const sub: Subscriber = { res, drainTimer: undefined };
    this.subscribers.set(res, sub);
    res.on('close', () => this.forget(sub));
    this.send(sub, 'retry: 2000\n\n');
    if (first !== undefined) this.send(sub, first);
    return true;
  }

  /** Sends `data` (one complete SSE message) to every stream, dropping those that do not keep up. */
  broadcast(data: string): void {
    for (const sub of [...this.subscribers.values()]) this.send(sub, data);
  }

  /** Ends every stream (server shutdown). */
  closeAll(): void {
    for (const sub of [...this.subscribers.values()]) {
      this.forget(sub);
      sub.res.end();
    }
  }

  private send(sub: Subscriber, data: string): void {
    const { res } = sub;
    if (res.writableLength > this.limits.maxBufferedBytes) return this.drop(sub, `more than ${this.limits.maxBufferedBytes} bytes wait unsent`);
    if (res.write(data) || sub.drainTimer) return;
    sub.drainTimer = setTimeout(() => this.drop(sub, `no drain within ${this.limits.drainTimeoutMs} ms`), this.limits.drainTimeoutMs);
    sub.drainTimer.unref();
    res.once('drain', () => {
      clearTimeout(sub.drainTimer);
      sub.drainTimer = undefined;
    });
  }

  private drop(sub: Subscriber, why: string): void {
    if (!this.subscribers.has(sub.res)) return;
    this.logger.warn({ why, remote: sub.res.socket?.remoteAddress, buffered: sub.res.writableLength }, 'dropped a dashboard event stream that does not read');
    this.forget(sub);
    // Destroy, not end: end() would queue behind the bytes the reader is not reading.
    sub.res.destroy();
  }

  private forget(sub: Subscriber): void {
    clearTimeout(sub.drainTimer);
    sub.drainTimer = undefined;
    this.subscribers.delete(sub.res);
  }
}

function positiveInteger(field: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new ConfigError('inferq dashboard', [{ field, message: `must be a positive integer, got ${value}` }]);
  return value;
}

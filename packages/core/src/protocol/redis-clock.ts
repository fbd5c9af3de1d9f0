/**
 * Deadlines on Redis time. A client and a worker on two machines never
 * compare their own clocks: each keeps an estimate of Redis's clock
 * (`TIME`), and every deadline that travels is an epoch ms on that clock.
 * Skew between machines then costs nothing; what remains is the error of the
 * estimate, at most half a round trip.
 *
 * The offset is taken from the fastest of the recent round trips (its
 * midpoint is the tightest bound), and refreshed by whoever already talks to
 * Redis periodically (the client's tick, the worker's batch reads), so it
 * follows a local clock that is stepped by NTP.
 */
export class RedisClock {
  private offsetMs = 0;
  private bestRttMs = Infinity;
  private bestAt = 0;
  private synced = false;

  /** Now, on Redis's clock (epoch ms). */
  now(): number {
    return Date.now() + this.offsetMs;
  }

  /** A local epoch-ms time, on Redis's clock. */
  toRedis(localMs: number): number {
    return localMs + this.offsetMs;
  }

  /**
   * Feeds one observation: Redis said `redisMs` during a round trip that
   * started at local `sentAt` and ended at `receivedAt` (epoch ms). A sample
   * is taken when its round trip is at most 1.5x the best one seen in the last
   * minute (queues under load make round trips slow and their midpoints
   * loose), or when the best one is older than that.
   */
  observe(redisMs: number, sentAt: number, receivedAt: number): void {
    const rtt = Math.max(0, receivedAt - sentAt);
    const stale = receivedAt - this.bestAt > 60_000;
    if (!this.synced || stale || rtt <= this.bestRttMs * 1.5 + 1) {
      this.offsetMs = redisMs - (sentAt + rtt / 2);
      if (rtt < this.bestRttMs || stale) {
        this.bestRttMs = rtt;
        this.bestAt = receivedAt;
      }
      this.synced = true;
    }
  }

  /** One `TIME` round trip. */
  async sync(redis: { time(): Promise<[string, string] | unknown> }): Promise<void> {
    const sentAt = Date.now();
    const reply = (await redis.time()) as [string, string];
    const receivedAt = Date.now();
    this.observe(Number(reply[0]) * 1000 + Math.floor(Number(reply[1]) / 1000), sentAt, receivedAt);
  }
}

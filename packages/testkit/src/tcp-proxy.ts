/**
 * A TCP proxy on 127.0.0.1 that fault tests put between a component and
 * Redis, to break the network path without touching the server:
 *
 * - `blackhole()`: bytes in both directions are read and thrown away while
 *   every socket stays open (no FIN, no RST). This is the silently dead path
 *   (a pulled cable, a dropped NAT entry) where a blocking Redis read never
 *   returns and only a client-side timeout can notice; stopping or killing
 *   Redis cannot produce it, because the kernel then closes the sockets.
 * - `restore()`: forwarding resumes; what was swallowed stays lost.
 * - `blackholeExisting()`: the connections open now go silently dead for
 *   good, while new ones are forwarded: what a client sees when one path
 *   dies and a reconnect finds a working one.
 * - `dropAll()`: every connection is reset at once, as by a network reset.
 * - `hold()` / `release()`: new connections are accepted and what they send
 *   is kept, in order, until `release()` forwards it. A process started
 *   against a holding proxy loads its code and connects, then waits; its
 *   first command runs the moment the test releases it. Tests use it as a
 *   gate when a command must follow some event within a bound that process
 *   start-up (seconds under load) cannot promise.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

/** One accepted connection and its upstream side. */
interface Pair {
  readonly client: Socket;
  /** Absent while the connection was accepted during a blackhole and not yet restored. */
  upstream: Socket | undefined;
  /** The upstream side went away during a blackhole; the client learns it on restore. */
  upstreamLost: boolean;
  /** Swallowed for good (`blackholeExisting`). */
  dead: boolean;
  /** Accepted during a hold: the bytes it sent, not forwarded until `release()`. */
  held: Buffer[] | undefined;
  /** It ended its side during the hold: the upstream is ended once the held bytes are written. */
  endedWhileHeld: boolean;
}

export class TcpProxy {
  readonly port: number;
  readonly url: string;
  private readonly pairs = new Set<Pair>();
  private blackholed = false;
  private holding = false;

  private constructor(
    private readonly server: Server,
    private readonly target: { host: string; port: number },
  ) {
    const addr = server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : 0;
    this.url = `redis://127.0.0.1:${this.port}`;
    server.on('connection', (client) => this.accept(client));
  }

  /** Listens on a free port of 127.0.0.1 and forwards every connection to `target`. */
  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const server = createServer();
    // Port 0 lets the kernel pick: no window in which another process takes a port picked for us.
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new TcpProxy(server, { host: target.host, port: target.port });
  }

  /** Live connections (accepted client sockets not yet closed). */
  get connections(): number {
    return this.pairs.size;
  }

  /** Swallows bytes both ways from now on; sockets stay open, new ones are accepted and swallowed too. */
  blackhole(): void {
    this.blackholed = true;
    // A side paused for backpressure must keep being read, or the sender would see its writes stall.
    for (const pair of this.pairs) {
      pair.client.resume();
      pair.upstream?.resume();
    }
  }

  /** The connections open now swallow every byte from now on, for good; new connections are forwarded. */
  blackholeExisting(): void {
    for (const pair of this.pairs) {
      pair.dead = true;
      pair.client.resume();
      pair.upstream?.resume();
    }
  }

  /** Forwards again, for existing and new connections. */
  restore(): void {
    this.blackholed = false;
    for (const pair of [...this.pairs]) {
      if (pair.upstreamLost) {
        // The path is back and the peer is gone: the client now sees the close it missed.
        this.destroyPair(pair);
      } else if (!pair.upstream && !pair.held) {
        this.connectUpstream(pair);
      }
    }
  }

  /** New connections from now on are accepted and held: what they send is kept, unforwarded, until `release()`. */
  hold(): void {
    this.holding = true;
  }

  /** Connects every held connection to the target and sends what it kept, in order; new connections are forwarded again. */
  release(): void {
    this.holding = false;
    for (const pair of [...this.pairs]) {
      const held = pair.held;
      if (!held) continue;
      pair.held = undefined;
      // During a blackhole the held bytes go where a blackhole sends every byte; restore() connects it later.
      if (this.blackholed) continue;
      this.connectUpstream(pair);
      // A socket still connecting queues writes until it is connected.
      for (const chunk of held) this.forward(chunk, pair.client, pair.upstream);
      if (pair.endedWhileHeld) pair.upstream?.end();
    }
  }

  /** Resets every current connection, both sides. */
  dropAll(): void {
    for (const pair of [...this.pairs]) this.destroyPair(pair, true);
  }

  /** Destroys every socket and stops listening. */
  async close(): Promise<void> {
    for (const pair of [...this.pairs]) this.destroyPair(pair);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    const pair: Pair = { client, upstream: undefined, upstreamLost: false, dead: false, held: this.holding ? [] : undefined, endedWhileHeld: false };
    this.pairs.add(pair);
    client.setNoDelay(true);
    client.on('error', () => undefined); // the 'close' that follows does the cleanup
    client.on('data', (chunk: Buffer) => {
      if (pair.held) pair.held.push(chunk);
      else if (!pair.dead) this.forward(chunk, client, pair.upstream);
    });
    client.on('end', () => {
      if (pair.held) pair.endedWhileHeld = true;
      else if (!this.blackholed && !pair.dead) pair.upstream?.end();
    });
    // Whatever the network state, a client that is gone takes its upstream with it (no leaked sockets to Redis).
    client.on('close', () => this.destroyPair(pair));
    // Accepted during a blackhole: it must not reach the target until restore(); during a hold, until release().
    if (!this.blackholed && !pair.held) this.connectUpstream(pair);
  }

  private connectUpstream(pair: Pair): void {
    const upstream = connect({ host: this.target.host, port: this.target.port });
    pair.upstream = upstream;
    upstream.setNoDelay(true);
    upstream.on('error', () => undefined); // the 'close' that follows does the cleanup
    upstream.on('data', (chunk: Buffer) => {
      if (!pair.dead) this.forward(chunk, upstream, pair.client);
    });
    upstream.on('end', () => {
      if (!this.blackholed && !pair.dead) pair.client.end();
    });
    upstream.on('close', (hadError) => {
      if (!this.pairs.has(pair)) return;
      if (this.blackholed || pair.dead) {
        pair.upstreamLost = true; // a dead path carries no FIN or RST to the client
        return;
      }
      if (hadError) this.destroyPair(pair);
      else pair.client.end(); // graceful: let buffered bytes reach the client first
    });
  }

  /** Writes `chunk` on, unless blackholed (then it is dropped); pauses `from` while `to` is full. */
  private forward(chunk: Buffer, from: Socket, to: Socket | undefined): void {
    if (this.blackholed || !to || to.destroyed) return;
    if (!to.write(chunk) && !this.blackholed) {
      from.pause();
      to.once('drain', () => from.resume());
    }
  }

  private destroyPair(pair: Pair, reset = false): void {
    if (!this.pairs.delete(pair)) return;
    for (const socket of [pair.client, pair.upstream]) {
      if (!socket || socket.destroyed) continue;
      // An RST, as a network reset gives, when the socket is connected; a plain destroy otherwise.
      if (reset && !socket.connecting) socket.resetAndDestroy();
      else socket.destroy();
    }
  }
}

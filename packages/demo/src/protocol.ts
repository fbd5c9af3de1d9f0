/**
 * What a client process tells the demo's parent process, one JSON object
 * per stdout line. stdout rather than Redis or IPC: it needs nothing but
 * the pipe every child already has, it works the same whatever Redis is
 * used, and the stderr pipe stays free for logs.
 *
 * Per-request records go up in batches (every ~200 ms) so the parent can
 * draw a progress bar and, at the end, compute exact latency percentiles
 * and histograms over every request of every process.
 */

/** How a request ended, as the caller saw it. */
export type Outcome = 'hit' | 'computed' | 'coalesced' | 'error' | 'timeout';
export const OUTCOMES: readonly Outcome[] = ['hit', 'computed', 'coalesced', 'error', 'timeout'];

/** Which part of the load issued the request. */
export type Source = 'closed' | 'open';

/** One finished request. Times are epoch ms (all processes run on one machine, so one clock). */
export interface RequestRecord {
  /** Client process number (0-based); in embedded mode, the simulated client. */
  client: number;
  startMs: number;
  latencyMs: number;
  outcome: Outcome;
  source: Source;
  /** Worker that computed or found the output (absent for client-side cache hits and in embedded mode). */
  worker?: string;
  /** Size of the model batch that computed the output (absent when it came from the cache). */
  batchSize?: number;
  /** Error code for failed requests (e.g. INFERQ_TIMEOUT). */
  error?: string;
}

/** A record on the wire: a tuple, because 20,000 of them with field names would be mostly field names. */
export type RecordRow = [startMs: number, latencyMs: number, outcome: number, source: number, worker: string, batchSize: number, error: string];

export function toRow(r: RequestRecord): RecordRow {
  return [
    Math.round(r.startMs * 100) / 100,
    Math.round(r.latencyMs * 1000) / 1000,
    OUTCOMES.indexOf(r.outcome),
    r.source === 'open' ? 1 : 0,
    r.worker ?? '',
    r.batchSize ?? 0,
    r.error ?? '',
  ];
}

export function fromRow(client: number, row: RecordRow): RequestRecord {
  const [startMs, latencyMs, outcome, source, worker, batchSize, error] = row;
  const r: RequestRecord = { client, startMs, latencyMs, outcome: OUTCOMES[outcome] ?? 'error', source: source === 1 ? 'open' : 'closed' };
  if (worker) r.worker = worker;
  if (batchSize > 0) r.batchSize = batchSize;
  if (error) r.error = error;
  return r;
}

/** Lines a client process prints. */
export type ClientMessage =
  /** Connected and holding its inputs; waiting for the start signal. */
  | { t: 'ready'; client: number; pid: number }
  /** Requests finished since the last message. */
  | { t: 'rows'; client: number; rows: RecordRow[] }
  /** Every request finished and the InferenceClient is closed. */
  | { t: 'done'; client: number; loadMs: number }
  /** Something failed outside any single request. */
  | { t: 'fatal'; client: number; message: string };

/** Parses one stdout line; undefined for anything that is not a message (a stray log line, say). */
export function parseMessage(line: string): ClientMessage | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const m = JSON.parse(line) as ClientMessage;
    return typeof m === 'object' && m !== null && typeof m.t === 'string' ? m : undefined;
  } catch {
    return undefined;
  }
}

/** What the parent passes to a client process (as one JSON argument; the Redis URL comes in env REDIS_URL). */
export interface ClientProcessConfig {
  clientIndex: number;
  prefix: string;
  model: string;
  /** Redis list the client BLPOPs once before sending: all clients start together. */
  goKey: string;
  requests: number;
  inFlight: number;
  openRatePerSec: number;
  useCache: boolean;
  cacheMaxSize: number;
  timeoutMs: number;
  seed: number;
  poolSize: number;
  zipfS: number;
  inputSize: number;
  /** Longest wait for the start signal, ms. */
  startTimeoutMs: number;
}

/**
 * What travels through Redis between clients and workers.
 *
 * Requests: a client packs the requests that arrive in one tick into one
 * BullMQ job, a `RequestEnvelope` (client-side coalescing, the way ioredis
 * auto-pipelining packs commands): under light load each request is its own
 * job, under heavy load one job carries many. Workers batch by items, not
 * jobs; results, errors and deadlines stay per item.
 *
 * Results: a worker RPUSHes to the inbox list of the client that waits
 * (`inferq:{m}:inbox:<client id>`) one element per settled batch, holding one
 * line per result: `<request id> <payload>`, lines joined by `\n` (JSON never
 * holds a raw newline). The same payload can go to several waiters of one
 * single-flight key with only the id changed (done inside the settle script).
 * The client reads its inbox with one blocking loop.
 */
import type { WireError } from './errors.js';

export const WIRE_VERSION = 1;

/** BullMQ job name of an envelope. */
export const ENVELOPE_JOB_NAME = 'infer';

export interface RequestItem {
  /** Request id, unique within the client. */
  id: string;
  /** Cache key when caching is on for this request; absent means: no cache read/write, no single-flight. */
  key?: string;
  /** True when this request owns a single-flight marker the worker must settle. */
  flight?: boolean;
  /**
   * The input as its canonical JSON text. Text, not a value: the client has
   * it anyway (for the key and the size check), and BullMQ then serialises a
   * string instead of walking, say, 256 floats a second time.
   */
  input: string;
  /** Epoch ms after which the caller no longer waits; a worker drops the item unrun. */
  deadline: number;
}

export interface RequestEnvelope {
  v: typeof WIRE_VERSION;
  /** Client id: results go to `inbox(client)`. */
  client: string;
  items: RequestItem[];
}

export type ResultPayload =
  | { ok: 1; output: unknown; worker: string; batchSize: number; cached?: 1 }
  | { ok: 0; error: WireError; worker: string };

export function encodeResultPayload(payload: ResultPayload): string {
  return JSON.stringify(payload);
}

/** Builds the success payload around an output that is already JSON text (saves a parse/stringify). */
export function encodeOutputPayload(outputJson: string, worker: string, batchSize: number, cached: boolean): string {
  return `{"ok":1,"worker":${JSON.stringify(worker)},"batchSize":${batchSize}${cached ? ',"cached":1' : ''},"output":${outputJson}}`;
}

export function encodeInboxMessage(requestId: string, payload: string): string {
  return `${requestId} ${payload}`;
}

export interface InboxMessage {
  id: string;
  payload: ResultPayload;
}

export function decodeInboxMessage(message: string): InboxMessage {
  const space = message.indexOf(' ');
  if (space <= 0) throw new SyntaxError(`Malformed inbox message: ${message.slice(0, 80)}`);
  return { id: message.slice(0, space), payload: JSON.parse(message.slice(space + 1)) as ResultPayload };
}

/** Splits one inbox element into its messages; a malformed line is reported through `onError` and skipped. */
export function decodeInboxElement(element: string, onError: (err: unknown, line: string) => void): InboxMessage[] {
  const out: InboxMessage[] = [];
  for (const line of element.split('\n')) {
    if (line === '') continue;
    try {
      out.push(decodeInboxMessage(line));
    } catch (err) {
      onError(err, line);
    }
  }
  return out;
}

/**
 * Requests, as they travel from a client to a worker: a client packs the
 * requests that arrive in one tick into one BullMQ job, a `RequestEnvelope`
 * (client-side coalescing, the way ioredis auto-pipelining packs commands):
 * under light load each request is its own job, under heavy load one job
 * carries many. Workers batch by items, not jobs; results, errors and
 * deadlines stay per item.
 *
 * The envelope names the model version and quantization the client asked
 * for: they are part of every cache key, so a worker serving another one
 * refuses the items instead of caching one precision's outputs under the
 * other's keys. `decodeEnvelope` checks everything a worker relies on; an
 * item that fails the check fails alone. An item's input is its canonical
 * JSON text (`input`) or, for a flat array of finite numbers, its compact
 * form (`f64`), which the decoder turns into a Float64Array.
 */
import { QUANTIZATIONS, type Quantization } from '../config.js';
import { WIRE_ID_PATTERN } from './identity.js';
import { DEFAULT_TENANT, TENANT_PATTERN } from './queue-room.js';
import { decodeCarrier, type TraceCarrier } from '../tracing.js';
import { decodeF64, type ItemInput } from './compact-input.js';

export const ENVELOPE_VERSION = 2;

/** BullMQ job name of an envelope. */
export const ENVELOPE_JOB_NAME = 'infer';

export interface RequestItem {
  /** Request id, unique within the client (`<client id>.<seq>`). */
  id: string;
  /**
   * The input as its canonical JSON text. Text, not a value: the client has
   * it anyway (for the key and the size check), and BullMQ then serialises a
   * string instead of walking, say, 256 floats a second time.
   * Exactly one of `input` and `f64`.
   */
  input?: string;
  /**
   * A flat array of finite numbers in compact form: base64 of its float64
   * values, little-endian (compact-input.ts). It means the same as its
   * canonical JSON (same cache key), costs no number formatting or parsing.
   * Envelope version 2 gained it as an optional field: a worker that predates
   * it refuses such an item alone ("input is not JSON text").
   */
  f64?: string;
  /** Redis time (epoch ms) after which the caller no longer waits; a worker drops the item unrun. */
  deadline: number;
  /** Cache key when the request uses the cache; the request then owns the flight of that key. */
  key?: string;
  /** 1 when the request was counted in the model's queue length (maxQueueLength): its settle gives the room back. */
  q?: 1;
  /**
   * The trace context of the request's span (tracing.ts), as the application's
   * propagator wrote it (W3C `traceparent` by default); absent unless the
   * application installed an OpenTelemetry SDK. A malformed one is ignored.
   */
  t?: TraceCarrier;
}

export interface RequestEnvelope {
  v: typeof ENVELOPE_VERSION;
  /** Client id: results go to its inbox. */
  client: string;
  modelVersion: string;
  quantization: Quantization;
  /** The client's tenant (fair shares of the queue, stats); absent = `default`. */
  tenant?: string;
  items: RequestItem[];
}

/**
 * An item that passed the checks, with its place in the envelope (its bit in
 * the job's done bitmap); its input is the JSON text, or the decoded numbers
 * of a compact one.
 */
export interface EnvelopeItem extends Omit<RequestItem, 'input' | 'f64'> {
  input: ItemInput;
  index: number;
}

/** An item that did not: when its id is usable, its caller can still be told. */
export interface BadEnvelopeItem {
  index: number;
  id: string | undefined;
  reason: string;
}

export type DecodedEnvelope =
  | { ok: true; client: string; modelVersion: string; quantization: Quantization; tenant: string; items: EnvelopeItem[]; bad: BadEnvelopeItem[] }
  | { ok: false; reason: string };

const CACHE_KEY_PATTERN = /^[0-9a-f]{64}$/;

function itemProblem(raw: Record<string, unknown>): string | undefined {
  if (raw.f64 !== undefined) {
    if (raw.input !== undefined) return 'both input and f64';
    if (typeof raw.f64 !== 'string') return 'f64 is not base64 of float64 values';
  } else if (typeof raw.input !== 'string') return 'input is not JSON text';
  if (typeof raw.deadline !== 'number' || !Number.isFinite(raw.deadline)) return 'deadline is not a finite number';
  if (raw.key !== undefined && (typeof raw.key !== 'string' || !CACHE_KEY_PATTERN.test(raw.key))) return 'key is not a cache key';
  return undefined;
}

/** Checks a job's data: the envelope as a whole, then each item. Never throws. */
export function decodeEnvelope(data: unknown): DecodedEnvelope {
  if (typeof data !== 'object' || data === null) return { ok: false, reason: 'job data is not an object' };
  const env = data as Record<string, unknown>;
  if (env.v !== ENVELOPE_VERSION) return { ok: false, reason: `envelope version ${String(env.v)}, expected ${ENVELOPE_VERSION}` };
  if (typeof env.client !== 'string' || !WIRE_ID_PATTERN.test(env.client)) return { ok: false, reason: 'client id missing or malformed' };
  if (typeof env.modelVersion !== 'string') return { ok: false, reason: 'modelVersion missing' };
  if (!QUANTIZATIONS.includes(env.quantization as Quantization)) return { ok: false, reason: 'quantization missing or unknown' };
  if (!Array.isArray(env.items)) return { ok: false, reason: 'items is not an array' };
  if (env.tenant !== undefined && (typeof env.tenant !== 'string' || !TENANT_PATTERN.test(env.tenant))) return { ok: false, reason: 'tenant malformed' };
  const tenant = (env.tenant as string | undefined) ?? DEFAULT_TENANT;
  const items: EnvelopeItem[] = [];
  const bad: BadEnvelopeItem[] = [];
  env.items.forEach((value: unknown, index) => {
    const raw = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
    const id = typeof raw.id === 'string' && WIRE_ID_PATTERN.test(raw.id) ? raw.id : undefined;
    const problem = id === undefined ? 'request id missing or malformed' : itemProblem(raw);
    if (problem !== undefined || id === undefined) {
      bad.push({ index, id, reason: problem ?? 'request id missing or malformed' });
      return;
    }
    // A compact input is decoded here, once, and checked (base64, whole float64s, all finite).
    const input: ItemInput | string = typeof raw.f64 === 'string' ? decodeF64(raw.f64) : (raw.input as string);
    if (typeof raw.f64 === 'string' && typeof input === 'string') {
      bad.push({ index, id, reason: input });
      return;
    }
    const item: EnvelopeItem = { id, input, deadline: raw.deadline as number, index };
    if (raw.key !== undefined) item.key = raw.key as string;
    if (raw.q === 1) item.q = 1;
    // Tracing is best effort: a bad carrier drops the link, never the request.
    const t = raw.t === undefined ? undefined : decodeCarrier(raw.t);
    if (t !== undefined) item.t = t;
    items.push(item);
  });
  return { ok: true, client: env.client, modelVersion: env.modelVersion, quantization: env.quantization as Quantization, tenant, items, bad };
}

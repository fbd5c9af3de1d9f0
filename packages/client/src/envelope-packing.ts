/**
 * How a tick's requests become BullMQ jobs: envelopes of one priority class
 * each (a job has one priority), of at most `maxEnvelopeItems` items and
 * `maxEnvelopeBytes` of inputs (at least one item each), each with the job
 * priority of its last-ranked request (protocol/priority.ts).
 */
import { DEFAULT_TENANT, ENVELOPE_VERSION, PRIORITIES, jobPriority, type RedisClock, type RequestEnvelope, type RequestItem } from '@inferq/core/protocol';
import type { ResolvedClientOptions } from './client-options.js';
import type { Flight } from './flight.js';
import { requestItem } from './wire-input.js';

export interface PackedEnvelopes {
  envelopes: RequestEnvelope[];
  /** The flights of each envelope, in item order. */
  members: Flight[][];
  /** The BullMQ priority of each envelope's job. */
  priorities: number[];
}

/** Packs flights into envelopes; each flight's `sentDeadline` is set to the deadline it is sent with. */
export function packEnvelopes(flights: Flight[], client: string, opts: ResolvedClientOptions, clock: RedisClock): PackedEnvelopes {
  const out: PackedEnvelopes = { envelopes: [], members: [], priorities: [] };
  for (const group of envelopeGroups(flights, opts)) {
    const items: RequestItem[] = group.map((f) => {
      f.sentDeadline = f.deadline;
      // A tensor-shaped uncached input travels compact (wire-input.ts), the rest as canonical JSON text.
      const item: RequestItem = requestItem(f.id, f, clock.toRedis(f.deadline));
      // Only an owned flight is the worker's to settle: a flight we lost (taken over) is not.
      if (f.key !== undefined) item.key = f.key;
      if (f.room) item.q = 1;
      if (f.trace?.carrier) item.t = f.trace.carrier;
      return item;
    });
    out.members.push(group);
    // A job of k requests of its tenant ranks where its last one does: it holds k places in the
    // tenant's order (its best rank would let a large envelope tie with a lone request).
    out.priorities.push(jobPriority((group[0] as Flight).priority, Math.max(...group.map((f) => f.rank))));
    out.envelopes.push({
      v: ENVELOPE_VERSION,
      client,
      modelVersion: opts.modelVersion,
      quantization: opts.config.quantization,
      ...(opts.tenant !== DEFAULT_TENANT ? { tenant: opts.tenant } : {}),
      items,
    });
  }
  return out;
}

function* envelopeGroups(flights: Flight[], opts: ResolvedClientOptions): Generator<Flight[]> {
  let group: Flight[] = [];
  let bytes = 0;
  const byClass = flights.every((f) => f.priority === (flights[0] as Flight).priority) ? flights : PRIORITIES.flatMap((p) => flights.filter((f) => f.priority === p));
  for (const f of byClass) {
    const size = f.input.length;
    if (group.length > 0 && (group.length >= opts.maxEnvelopeItems || bytes + size > opts.maxEnvelopeBytes || f.priority !== (group[0] as Flight).priority)) {
      yield group;
      group = [];
      bytes = 0;
    }
    group.push(f);
    bytes += size;
  }
  if (group.length > 0) yield group;
}

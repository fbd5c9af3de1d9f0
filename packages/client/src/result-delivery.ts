/**
 * The delivery path: result elements read from a client's inbox (one element
 * per worker batch, one line per request) become answers to its callers.
 *
 * Invariants:
 * - A result is delivered by request id, at most once: a line for a request
 *   no longer tracked (answered, given up, closed) is dropped.
 * - One bad line fails its own request only; the rest of the read is delivered.
 * - INFERQ_DEADLINE_EXCEEDED for a flight whose callers still wait is not an
 *   answer: the worker dropped it for an earlier deadline (another caller's,
 *   or an owner who gave up), so it is sent again.
 */
import { ErrorCode, ProtocolError, errorFromWire, type Logger } from '@inferq/core';
import { decodeInboxElement, type InboxMessage } from '@inferq/core/protocol';
import { hasLiveCallers, type Flight } from './flight.js';
import type { FlightTable } from './flight-table.js';
import type { LocalResultCache } from './local-result-cache.js';

export interface ResultDeliveryOptions {
  table: FlightTable;
  local: LocalResultCache | undefined;
  logger: Logger;
  model: string;
  /** Sends a flight again (claim, or enqueue when it has no cache key). */
  resend(f: Flight): void;
}

export class ResultDelivery {
  constructor(private readonly o: ResultDeliveryOptions) {}

  /** Result elements read from the inbox in one round trip. */
  deliverElements(elements: readonly string[]): void {
    const { o } = this;
    for (const element of elements) {
      const messages = decodeInboxElement(element, (line) => o.logger.error({ line: line.slice(0, 200) }, 'dropping an inbox line without a readable request id'));
      for (const m of messages) {
        try {
          this.deliver(m);
        } catch (err) {
          o.logger.error({ err, requestId: m.id }, 'delivering a result failed');
        }
      }
    }
    o.table.flushLatencies();
  }

  /** A result arrived from a worker (or a flight's settle). */
  private deliver(message: InboxMessage): void {
    const { o } = this;
    const flight = o.table.get(message.id);
    if (!flight) {
      o.logger.debug({ requestId: message.id }, 'result for a request no longer waiting (answered, timed out or closed)');
      return;
    }
    if ('corrupt' in message) {
      const err = new ProtocolError(`The result for request ${flight.id} could not be decoded: ${message.corrupt}.`, { details: { requestId: flight.id } });
      o.table.fail([flight], err, 'corrupt result line');
      return;
    }
    const p = message.payload;
    if (p.ok === 1) {
      if (o.local && flight.key !== undefined) o.local.put(flight.key, JSON.stringify(p.output));
      o.table.resolve(flight, { output: p.output, cached: p.cached === 1, worker: p.worker, batchSize: p.batchSize });
      return;
    }
    const err = errorFromWire(p.error, { requestId: flight.id, worker: p.worker, model: o.model });
    if (err.code === ErrorCode.DEADLINE_EXCEEDED && hasLiveCallers(flight)) {
      // Dropped for a deadline that is not our callers' (they joined later, or the flight they
      // joined belonged to a caller who gave up): they still wait, so the request goes again.
      o.logger.info({ requestId: flight.id }, 'a worker dropped this request for an earlier deadline; sending it again for callers still waiting');
      o.resend(flight);
      return;
    }
    // The caller gets the error and decides; the worker logged the failure where it happened.
    o.logger.debug({ err, requestId: flight.id, worker: p.worker }, 'request failed in the worker');
    o.table.reject([flight], err);
  }
}

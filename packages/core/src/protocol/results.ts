/**
 * Results, as they travel from a worker to a client: a worker pushes to the
 * inbox list of the client that waits one element per settled batch, holding
 * one line per result: `<request id> <payload>`, lines joined by `\n` (JSON
 * never holds a raw newline). The same payload goes to every waiter of a
 * flight with only the id changed (done inside the settle script).
 *
 * One builder per payload kind, one decoder that checks every line: a line
 * that cannot be decoded fails its own request (when its id can be read) and
 * nothing else.
 */
import { errorToWire, isErrorCode, type WireError } from '../errors.js';
import { WIRE_ID_PATTERN } from './identity.js';

export type ResultPayload =
  | { ok: 1; output: unknown; worker: string; batchSize: number; cached?: 1 }
  | { ok: 0; error: WireError; worker: string };

/** The success payload around an output that is already JSON text (saves a parse/stringify). */
export function successPayload(outputJson: string, worker: string, batchSize: number, cached: boolean): string {
  return `{"ok":1,"worker":${JSON.stringify(worker)},"batchSize":${batchSize}${cached ? ',"cached":1' : ''},"output":${outputJson}}`;
}

/** The failure payload of an error (an InferqError keeps its code; anything else travels as MODEL_FAILED). */
export function failurePayload(err: unknown, worker: string): string {
  return JSON.stringify({ ok: 0, error: errorToWire(err), worker });
}

/** One decoded line: a result for request `id`, or the reason its line was unusable. */
export type InboxMessage = { id: string; payload: ResultPayload } | { id: string; corrupt: string };

function checkPayload(p: unknown): string | undefined {
  if (typeof p !== 'object' || p === null) return 'payload is not an object';
  const r = p as Record<string, unknown>;
  if (typeof r.worker !== 'string') return 'payload names no worker';
  if (r.ok === 1) {
    if (!('output' in r)) return 'success payload without output';
    if (typeof r.batchSize !== 'number') return 'success payload without batchSize';
    return undefined;
  }
  if (r.ok === 0) {
    const e = r.error as Record<string, unknown> | undefined;
    if (typeof e !== 'object' || e === null || !isErrorCode(e.code) || typeof e.message !== 'string') return 'failure payload without a known error code';
    return undefined;
  }
  return 'payload is neither a success nor a failure';
}

/** Decodes one line; undefined when not even its request id can be read. */
export function decodeInboxLine(line: string): InboxMessage | undefined {
  const space = line.indexOf(' ');
  const id = space > 0 ? line.slice(0, space) : '';
  if (!WIRE_ID_PATTERN.test(id)) return undefined;
  let payload: unknown;
  try {
    payload = JSON.parse(line.slice(space + 1));
  } catch {
    return { id, corrupt: 'result payload is not JSON' };
  }
  const problem = checkPayload(payload);
  return problem === undefined ? { id, payload: payload as ResultPayload } : { id, corrupt: problem };
}

/** Splits one inbox element into its messages; a line without a readable id goes to `onUnreadable`. */
export function decodeInboxElement(element: string, onUnreadable: (line: string) => void): InboxMessage[] {
  const out: InboxMessage[] = [];
  for (const line of element.split('\n')) {
    if (line === '') continue;
    const m = decodeInboxLine(line);
    if (m) out.push(m);
    else onUnreadable(line);
  }
  return out;
}

/**
 * Who is who on the wire: client ids, request ids, and the timing constants
 * of the liveness protocol, in one place.
 *
 * A client id becomes part of Redis keys (its inbox, its heartbeat) and of
 * the flight fields that name waiters ("w:<client id> <request id>"), so it
 * keeps to a safe alphabet whatever the host name is: a space or a colon in
 * a host name must not split a field or a line.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';

/** Letters, digits, `.`, `_`, `-`: what client and request ids are made of. */
export const WIRE_ID_PATTERN = /^[A-Za-z0-9._-]{1,200}$/;

/** A new client or worker id: `<host>-<pid>-<random>`, the host reduced to the safe alphabet. */
export function newInstanceId(host: string = hostname()): string {
  const safeHost = host.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64) || 'host';
  return `${safeHost}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** How often a client renews its heartbeat and checks the requests that have waited long. */
export const CLIENT_TICK_MS = 1000;
/**
 * A client whose heartbeat is older than this is dead: the flights it owns
 * are taken over by a waiter. So a dead owner delays its waiters by at most
 * HEARTBEAT_TTL_MS + CLIENT_TICK_MS (plus one round trip).
 */
export const HEARTBEAT_TTL_MS = 3000;
/** Requests younger than this are not checked: nearly every request is answered sooner. */
export const CHECK_AFTER_MS = 2000;

/**
 * The longest `timeoutMs` a request may ask for. The flight scripts enforce
 * the same ceiling on their side (FLIGHT_MAX_MS in lua/includes/flight.lua),
 * so no caller can keep a flight open longer, whatever it sends.
 */
export const MAX_TIMEOUT_MS = 3_600_000;

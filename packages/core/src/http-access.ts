/**
 * `HttpAccess`: who may read inferq's small HTTP servers (`inferq metrics`,
 * `inferq dashboard`, a worker's `--metrics-port`). Two checks, each request:
 *
 * 1. The `Host` header must name this server: the bound address; when bound
 *    to loopback, also `localhost`, `127.0.0.1` and `::1`; when bound to a
 *    wildcard (`0.0.0.0`, `::`), any IP literal and `localhost`; plus every
 *    name in `allowHosts` (`*` accepts any). Else 421. This defeats DNS
 *    rebinding: a page of `evil.example` whose name is re-pointed at
 *    127.0.0.1 is same-origin with its own name, so the browser lets it read
 *    our answers, but its requests say `Host: evil.example`. An IP literal
 *    cannot be re-pointed, which is why a wildcard bind accepts any (a
 *    Prometheus or kubelet reaching a pod by IP, a port mapped by Docker).
 * 2. With `authToken`, `Authorization: Bearer <token>` (or the dashboard's
 *    session cookie, see `sessionCookie`), compared in constant time. Else 401.
 *
 * Serving beyond loopback without a token is refused (ConfigError) unless
 * `insecureNoAuth` says it is meant; then it is served with a warning.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { ConfigError } from './errors.js';
import { throttledLog, type Logger } from './logger.js';

export interface HttpAccessOptions {
  /**
   * Every request must carry `Authorization: Bearer <authToken>`. Default
   * none. CLIs: `--auth-token` or `INFERQ_HTTP_TOKEN`.
   */
  authToken?: string | undefined;
  /**
   * Host names (the `Host` header without its port) accepted besides the
   * bound address, e.g. the name a reverse proxy or a Kubernetes Service
   * forwards with; `*` accepts any. Default none. CLIs: `--allow-host`,
   * repeatable.
   */
  allowHosts?: readonly string[] | undefined;
  /**
   * Serve on an address beyond loopback without `authToken`. Default false:
   * refused with a ConfigError, since anyone who can reach the port could read
   * it. CLIs: `--insecure-no-auth`.
   */
  insecureNoAuth?: boolean | undefined;
}

/** What a request may be asked for, per path. */
export interface AdmitOptions {
  /** False: the Host check alone (health probes, see docs/http-endpoints.md). Default true. */
  token?: boolean;
}

/** Loopback names always accepted on a loopback bind. */
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1'];
const WILDCARDS = ['0.0.0.0', '::', ''];
/** Longest token accepted: a typo'd file or variable should fail loudly, not be compared for minutes. */
const MAX_TOKEN_LENGTH = 4096;

/** True for `localhost`, 127.0.0.0/8, `::1` and their IPv4-mapped forms. */
export function isLoopbackHost(host: string): boolean {
  const h = normalizeHost(host);
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

/** Lower case, no brackets, no trailing dot: `[::1]` -> `::1`, `Example.COM.` -> `example.com`. */
function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

/** The host name of a `Host` header (`name`, `name:port`, `[v6]:port`), or undefined when malformed. */
function hostOfHeader(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]/\s@]+)(?::\d{1,5})?$/.exec(header.trim());
  return m ? normalizeHost(m[1]!) : undefined;
}

/** Equal-length digests compared in constant time, so neither the token's length nor its prefix leaks through timing. */
function sameSecret(given: string, expected: Buffer): boolean {
  const digest = createHmac('sha256', 'inferq-http-token').update(given).digest();
  return timingSafeEqual(digest, expected);
}

export class HttpAccess {
  private readonly bind: string;
  private readonly anyHost: boolean;
  private readonly names: ReadonlySet<string>;
  private readonly wildcard: boolean;
  private readonly tokenDigest: Buffer | undefined;
  private readonly cookieValue: string | undefined;
  private readonly logRefused: (obj: Record<string, unknown>, msg: string) => void;

  /**
   * `component` names the server in errors and logs (`inferq metrics`).
   * Throws ConfigError for a bad token, or a bind beyond loopback without one
   * (unless `insecureNoAuth`).
   */
  constructor(bindHost: string, options: HttpAccessOptions, component: string, logger: Logger) {
    this.bind = normalizeHost(bindHost);
    const token = options.authToken;
    const issues = [];
    if (token !== undefined && (token.length === 0 || token.length > MAX_TOKEN_LENGTH || /\s/.test(token))) {
      issues.push({ field: 'authToken (--auth-token, INFERQ_HTTP_TOKEN)', message: `must be 1..${MAX_TOKEN_LENGTH} characters without spaces` });
    }
    const allow = (options.allowHosts ?? []).map(normalizeHost);
    for (const name of allow) if (name === '' || /[\s/@]/.test(name)) issues.push({ field: 'allowHosts (--allow-host)', message: `'${name}' is not a host name` });
    if (token === undefined && !isLoopbackHost(this.bind) && options.insecureNoAuth !== true) {
      issues.push({
        field: 'authToken (--auth-token, INFERQ_HTTP_TOKEN)',
        message: `is required to serve on '${bindHost}', beyond loopback (anyone who reaches the port could read it); give insecureNoAuth (--insecure-no-auth) to serve without one`,
      });
    }
    if (issues.length > 0) {
      const err = new ConfigError(component, issues);
      logger.error({ err, host: bindHost }, 'refusing to serve: bad access configuration');
      throw err;
    }
    this.wildcard = WILDCARDS.includes(this.bind);
    this.anyHost = allow.includes('*');
    const names = new Set(allow);
    if (!this.wildcard) names.add(this.bind);
    if (this.wildcard || isLoopbackHost(this.bind)) for (const n of LOOPBACK_NAMES) names.add(n);
    this.names = names;
    this.tokenDigest = token === undefined ? undefined : createHmac('sha256', 'inferq-http-token').update(token).digest();
    // The cookie holds a value derived from the token, not the token: cookies are shared by every port of a host.
    this.cookieValue = token === undefined ? undefined : createHmac('sha256', token).update('inferq-dashboard-session').digest('base64url');
    this.logRefused = throttledLog(logger, 'warn');
    if (token === undefined && !isLoopbackHost(this.bind)) {
      logger.warn({ host: bindHost }, `${component} serves on ${bindHost} WITHOUT authentication (insecureNoAuth): anyone who reaches the port can read it`);
    }
  }

  /** Whether requests must carry the token. */
  get tokenRequired(): boolean {
    return this.tokenDigest !== undefined;
  }

  /** Whether the `Host` header names this server. */
  hostAllowed(header: string | undefined): boolean {
    if (this.anyHost) return true;
    const host = hostOfHeader(header);
    if (host === undefined) return false;
    return this.names.has(host) || (this.wildcard && isIP(host) !== 0);
  }

  /** Whether `token` is the token (constant time); false when none is configured. */
  tokenMatches(token: string): boolean {
    return this.tokenDigest !== undefined && token.length <= MAX_TOKEN_LENGTH && sameSecret(token, this.tokenDigest);
  }

  /**
   * Checks a request; on refusal answers it (421 or 401), logs it (throttled)
   * and returns false. `cookieName`: a session cookie set by
   * `sessionCookie` counts as the token too (the dashboard's page and feed).
   */
  admit(req: IncomingMessage, res: ServerResponse, options: AdmitOptions & { cookieName?: string } = {}): boolean {
    const where = { path: (req.url ?? '').split('?')[0], remote: req.socket.remoteAddress };
    if (!this.hostAllowed(req.headers.host)) {
      this.logRefused({ ...where, host: String(req.headers.host ?? '').slice(0, 200) }, 'refused a request whose Host header does not name this server (DNS rebinding?)');
      res.writeHead(421, { 'content-type': 'text/plain; charset=utf-8' }).end('misdirected request: the Host header does not name this server (see --allow-host)\n');
      return false;
    }
    if (this.tokenDigest === undefined || options.token === false) return true;
    const auth = req.headers.authorization;
    const bearer = auth && /^Bearer +(\S+)\s*$/i.exec(auth)?.[1];
    if (bearer && this.tokenMatches(bearer)) return true;
    if (options.cookieName && this.cookieMatches(req, options.cookieName)) return true;
    this.logRefused({ ...where, authorization: auth ? 'wrong' : 'missing' }, 'refused a request without the right bearer token');
    res.writeHead(401, { 'content-type': 'text/plain; charset=utf-8', 'www-authenticate': 'Bearer realm="inferq"' }).end('unauthorized: send Authorization: Bearer <token> (--auth-token)\n');
    return false;
  }

  /**
   * A `Set-Cookie` value that `admit` accepts in place of the token:
   * HttpOnly, SameSite=Strict, for this path tree only, gone with the browser
   * session. Undefined when no token is configured.
   */
  sessionCookie(name: string): string | undefined {
    return this.cookieValue === undefined ? undefined : `${name}=${this.cookieValue}; Path=/; HttpOnly; SameSite=Strict`;
  }

  private cookieMatches(req: IncomingMessage, name: string): boolean {
    const expected = this.cookieValue;
    if (expected === undefined) return false;
    for (const part of (req.headers.cookie ?? '').split(';')) {
      const eq = part.indexOf('=');
      if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
      const given = Buffer.from(part.slice(eq + 1).trim());
      const want = Buffer.from(expected);
      if (given.length === want.length && timingSafeEqual(given, want)) return true;
    }
    return false;
  }
}

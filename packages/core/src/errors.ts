/**
 * The one error registry of inferq. Every error the library throws is an
 * `InferqError` with a stable `code` (documented in the README; a test checks
 * that every code is). Callers branch on `code` or on the subclass, never on
 * message text. Errors crossing Redis (worker -> client) are rebuilt from
 * their code with `errorFromWire`.
 */

export const ErrorCode = {
  /** A configuration object or env variable failed validation; `issues` lists every bad field. */
  CONFIG_INVALID: 'INFERQ_CONFIG_INVALID',
  /** The input cannot be turned into canonical JSON (function, BigInt, cycle, NaN, Infinity, symbol, undefined). */
  INPUT_NOT_SERIALIZABLE: 'INFERQ_INPUT_NOT_SERIALIZABLE',
  /** The serialised input is larger than `maxInputBytes`. */
  INPUT_TOO_LARGE: 'INFERQ_INPUT_TOO_LARGE',
  /** The input failed the user's zod input schema. */
  INPUT_INVALID: 'INFERQ_INPUT_INVALID',
  /** The model's queue holds `maxQueueLength` requests already; nothing was written. `retryAfterMs` is a hint. */
  QUEUE_FULL: 'INFERQ_QUEUE_FULL',
  /** A request waited longer than its `timeoutMs`. */
  TIMEOUT: 'INFERQ_TIMEOUT',
  /** A request's deadline passed before a worker ran it; it was dropped unrun. */
  DEADLINE_EXCEEDED: 'INFERQ_DEADLINE_EXCEEDED',
  /** The model threw, or returned an `Error` for this item. Carries the model's message. */
  MODEL_FAILED: 'INFERQ_MODEL_FAILED',
  /** The model did not return within the worker's `modelTimeoutMs`; the request was retried and ran out of attempts. */
  MODEL_TIMEOUT: 'INFERQ_MODEL_TIMEOUT',
  /** The worker's circuit breaker is open: the model failed every one of its last calls, so it is not called until a probe after a back-off succeeds. Retry later, or on another worker. */
  MODEL_UNAVAILABLE: 'INFERQ_MODEL_UNAVAILABLE',
  /** The input killed a worker process alone in the model `maxCrashes` times, at least once as a fresh process's first model call: it is not run again. Not retryable. */
  MODEL_CRASHED: 'INFERQ_MODEL_CRASHED',
  /** The model returned a different number of outputs than it was given inputs. */
  MODEL_OUTPUT_MISMATCH: 'INFERQ_MODEL_OUTPUT_MISMATCH',
  /** The component was stopped or closed; the request was not (or no longer) accepted. */
  CLOSED: 'INFERQ_CLOSED',
  /** The component was used before `start()`. */
  NOT_STARTED: 'INFERQ_NOT_STARTED',
  /** A model output is larger than the worker's `maxOutputBytes` as JSON; it is neither sent nor cached. */
  OUTPUT_TOO_LARGE: 'INFERQ_OUTPUT_TOO_LARGE',
  /** A model output could not be serialised to store or send. */
  OUTPUT_NOT_SERIALIZABLE: 'INFERQ_OUTPUT_NOT_SERIALIZABLE',
  /** No Redis could be reached or created (tests, demo). */
  REDIS_UNAVAILABLE: 'INFERQ_REDIS_UNAVAILABLE',
  /** A job was removed or failed without a result reaching the waiting caller. */
  JOB_LOST: 'INFERQ_JOB_LOST',
  /** A model module given to the worker CLI does not export a usable model. */
  MODEL_MODULE_INVALID: 'INFERQ_MODEL_MODULE_INVALID',
  /** The worker serves another model version or quantization than the client asked for; nothing was computed or cached. */
  MODEL_MISMATCH: 'INFERQ_MODEL_MISMATCH',
  /** Redis refused the credentials (wrong password or user): fix the URL or the `redis` options. */
  REDIS_AUTH_FAILED: 'INFERQ_REDIS_AUTH_FAILED',
  /** The Redis user lacks a command or key pattern inferq needs; `details.missing` names them. */
  REDIS_PERMISSION_DENIED: 'INFERQ_REDIS_PERMISSION_DENIED',
  /** A message or cache entry read from Redis could not be decoded (corrupt, or written by an incompatible version); only its own request fails. */
  PROTOCOL_ERROR: 'INFERQ_PROTOCOL_ERROR',
  /** This client or worker was given another `queueShards` than the model's clients and workers use; it does not start. */
  QUEUE_SHARDS_MISMATCH: 'INFERQ_QUEUE_SHARDS_MISMATCH',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface InferqErrorOptions {
  cause?: unknown;
  /** Structured context for logs (job ids, model, sizes). */
  details?: Record<string, unknown>;
}

export class InferqError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: InferqErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details ?? {};
  }

  /** Plain form for JSON logs and for sending across Redis. */
  toJSON(): { name: string; code: ErrorCode; message: string; details: Record<string, unknown> } {
    return { name: this.name, code: this.code, message: this.message, details: this.details };
  }
}

/** One bad field of a configuration: its path, what was wrong, what is allowed. */
export interface ConfigIssue {
  field: string;
  message: string;
}

export class ConfigError extends InferqError {
  readonly issues: readonly ConfigIssue[];
  constructor(component: string, issues: readonly ConfigIssue[]) {
    super(
      ErrorCode.CONFIG_INVALID,
      `Invalid ${component} configuration:\n` + issues.map((i) => `  - ${i.field}: ${i.message}`).join('\n'),
      { details: { component, issues } },
    );
    this.issues = issues;
  }
}

export class InputNotSerializableError extends InferqError {
  constructor(message: string, options: InferqErrorOptions = {}) {
    super(ErrorCode.INPUT_NOT_SERIALIZABLE, message, options);
  }
}

export class InputTooLargeError extends InferqError {
  /** `atLeast`: serialisation stopped once the size was known to pass the limit; `bytes` is a lower bound. */
  constructor(bytes: number, maxBytes: number, options: { atLeast?: boolean } = {}) {
    super(
      ErrorCode.INPUT_TOO_LARGE,
      options.atLeast
        ? `Input is larger than maxInputBytes (${maxBytes} bytes as JSON); serialisation stopped there. Raise 'maxInputBytes' or send a smaller input.`
        : `Input is ${bytes} bytes as JSON, more than maxInputBytes (${maxBytes}). Raise 'maxInputBytes' or send a smaller input.`,
      { details: { bytes, maxBytes, atLeast: options.atLeast === true } },
    );
  }
}

export class InputInvalidError extends InferqError {
  constructor(message: string, options: InferqErrorOptions = {}) {
    super(ErrorCode.INPUT_INVALID, message, options);
  }
}

export class TimeoutError extends InferqError {
  constructor(timeoutMs: number, details: Record<string, unknown> = {}) {
    super(ErrorCode.TIMEOUT, `Request timed out after ${timeoutMs} ms. Raise 'timeoutMs' or add workers.`, {
      details: { timeoutMs, ...details },
    });
  }
}

export class DeadlineExceededError extends InferqError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.DEADLINE_EXCEEDED, message, { details });
  }
}

export class ModelError extends InferqError {
  constructor(message: string, options: InferqErrorOptions = {}) {
    super(ErrorCode.MODEL_FAILED, message, options);
  }
}

/** The model failed every one of a worker's last calls (its circuit breaker is open): the request was not run. */
export class ModelUnavailableError extends InferqError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.MODEL_UNAVAILABLE, message, { details });
  }
}

/** An input that killed the worker process (alone in the model) `crashes` times; answered without running it again. */
export class ModelCrashedError extends InferqError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.MODEL_CRASHED, message, { details });
  }
}

export class ModelOutputMismatchError extends InferqError {
  constructor(expected: number, got: unknown, details: Record<string, unknown> = {}) {
    const what = Array.isArray(got) ? `${got.length} outputs` : `a ${got === null ? 'null' : typeof got} (not an array)`;
    super(
      ErrorCode.MODEL_OUTPUT_MISMATCH,
      `The model must return one output per input: it was given ${expected} inputs and returned ${what}.`,
      { details: { expected, got: Array.isArray(got) ? got.length : typeof got, ...details } },
    );
  }
}

export class ClosedError extends InferqError {
  constructor(what: string) {
    super(ErrorCode.CLOSED, `${what} is closed or stopping; the request was not accepted.`);
  }
}

export class NotStartedError extends InferqError {
  constructor(what: string) {
    super(ErrorCode.NOT_STARTED, `${what} has not been started; call start() first.`);
  }
}

export class RedisUnavailableError extends InferqError {
  constructor(message: string, options: InferqErrorOptions = {}) {
    super(ErrorCode.REDIS_UNAVAILABLE, message, options);
  }
}

export class JobLostError extends InferqError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.JOB_LOST, message, { details });
  }
}

export class QueueFullError extends InferqError {
  /** A hint: when the queue is likely to have room again, in ms. */
  readonly retryAfterMs: number;
  constructor(maxQueueLength: number, retryAfterMs: number, details: Record<string, unknown> = {}) {
    const tenant = typeof details.tenant === 'string' ? details.tenant : undefined;
    const why =
      details.reason === 'cap'
        ? `tenant '${tenant}' holds its cap of ${String(details.cap)} places in the model's queue`
        : `the model's queue is full (maxQueueLength ${maxQueueLength})${tenant !== undefined ? ` and tenant '${tenant}' holds at least its share (${String(details.share)})` : ''}`;
    super(ErrorCode.QUEUE_FULL, `${why[0]?.toUpperCase()}${why.slice(1)}; nothing was enqueued. Retry after about ${retryAfterMs} ms, or add workers.`, {
      details: { maxQueueLength, retryAfterMs, ...details },
    });
    this.retryAfterMs = retryAfterMs;
  }
}

export class ModelMismatchError extends InferqError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.MODEL_MISMATCH, message, { details });
  }
}

export class QueueShardsMismatchError extends InferqError {
  constructor(model: string, mine: number, recorded: number) {
    super(
      ErrorCode.QUEUE_SHARDS_MISMATCH,
      `Model '${model}' runs with queueShards ${recorded}; this process was given ${mine}. Use ${recorded}, or drain the model and run 'inferq set-shards --model ${model} --shards ${mine}'.`,
      { details: { model, queueShards: mine, recorded } },
    );
  }
}

/**
 * The model's shard count key holds something that is not a shard count
 * (written by hand or by another program): every client and worker of the
 * model stops on it, so the message names the key, its value and the fix.
 * Same code as a mismatch: the process does not start, and the operator's
 * remedy is the same command.
 */
export class ShardCountInvalidError extends InferqError {
  constructor(model: string, key: string, value: string, maxShards: number) {
    const shown = JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}...` : value);
    super(
      ErrorCode.QUEUE_SHARDS_MISMATCH,
      `Model '${model}': Redis key ${key} holds ${shown}, which is not a queue shard count (an integer 1..${maxShards}); inferq did not write it. ` +
        `Record the count the model's clients and workers use with 'inferq set-shards --model ${model} --shards <n>', or delete the key (DEL ${key}) and the next client or worker to start records its own.`,
      { details: { model, key, value, reason: 'invalid' } },
    );
  }
}

export class ProtocolError extends InferqError {
  constructor(message: string, options: InferqErrorOptions = {}) {
    super(ErrorCode.PROTOCOL_ERROR, message, options);
  }
}

/** The form in which an error travels through Redis from a worker to a client. */
export interface WireError {
  code: ErrorCode;
  message: string;
}

const knownCodes = new Set<string>(Object.values(ErrorCode));

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && knownCodes.has(value);
}

/**
 * Narrows a caught value to an `InferqError`, and with `code` to one of that
 * code, so that `err.code`, `err.details` and the message are typed in a
 * `catch` (where `err` is `unknown`):
 *
 * ```ts
 * try {
 *   await client.infer(input);
 * } catch (err) {
 *   if (isInferqError(err, ErrorCode.QUEUE_FULL)) return { status: 503 }; // err.code: 'INFERQ_QUEUE_FULL'
 *   if (isInferqError(err)) logger.warn({ code: err.code, details: err.details }, err.message);
 *   throw err;
 * }
 * ```
 *
 * It narrows to `InferqError` with that `code`, not to a subclass: an error
 * rebuilt from a worker's answer is an `InferqError` with the code alone
 * (see `errorFromWire`). For a subclass's own fields (`QueueFullError.retryAfterMs`,
 * `ConfigError.issues`) use `instanceof`.
 *
 * Besides `instanceof`, an `Error` carrying a known `code` and a `details`
 * object counts: an application can hold two copies of @inferq/core (two
 * versions in one node_modules), and then `instanceof` fails for errors made
 * by the other copy.
 */
export function isInferqError(err: unknown): err is InferqError;
export function isInferqError<C extends ErrorCode>(err: unknown, code: C): err is InferqError & { readonly code: C };
export function isInferqError(err: unknown, code?: ErrorCode): boolean {
  const shaped =
    err instanceof InferqError ||
    (err instanceof Error && isErrorCode((err as { code?: unknown }).code) && typeof (err as { details?: unknown }).details === 'object' && (err as { details?: unknown }).details !== null);
  return shaped && (code === undefined || (err as InferqError).code === code);
}

export function errorToWire(err: unknown): WireError {
  if (err instanceof InferqError) return { code: err.code, message: err.message };
  const message = err instanceof Error ? err.message : String(err);
  return { code: ErrorCode.MODEL_FAILED, message };
}

/** Rebuilds a typed error on the client side from what a worker sent. */
export function errorFromWire(wire: WireError, details: Record<string, unknown> = {}): InferqError {
  const code = isErrorCode(wire.code) ? wire.code : ErrorCode.MODEL_FAILED;
  switch (code) {
    case ErrorCode.MODEL_FAILED:
      return new ModelError(wire.message, { details });
    case ErrorCode.DEADLINE_EXCEEDED:
      return new DeadlineExceededError(wire.message, details);
    case ErrorCode.MODEL_CRASHED:
      return new ModelCrashedError(wire.message, details);
    case ErrorCode.MODEL_UNAVAILABLE:
      return new ModelUnavailableError(wire.message, details);
    default:
      return new InferqError(code, wire.message, { details });
  }
}

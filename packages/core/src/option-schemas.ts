/**
 * zod pieces shared by the option schemas of the client and the worker, so
 * both accept and reject the same connection, model, prefix and logger values
 * with the same messages.
 */
import { z } from 'zod';
import type { Logger } from './logger.js';
import { redisUrlProblem } from './redis-connection.js';
import { KEY_PREFIX_PATTERN, KEY_PREFIX_RULE, MODEL_NAME_PATTERN } from './protocol/keys.js';

// The problem is said without the URL: a password must not reach a configuration error.
const RedisUrlSchema = z.string().superRefine((url, ctx) => {
  const problem = redisUrlProblem(url);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** `redis://` / `rediss://` URL, an ioredis options object, or `{ cluster: [nodes], options? }` for a Redis Cluster. */
export const RedisConnectionSchema = z.union([
  RedisUrlSchema,
  z
    .object({
      cluster: z
        .array(z.string().regex(/^(rediss?:\/\/)?[^\s/]+:\d+\/?$/, 'must be host:port or a redis:// URL'))
        .min(1, 'needs at least one seed node'),
      options: z.object({}).passthrough().optional(),
    })
    .strict(),
  z.object({}).passthrough().refine((o) => !('cluster' in o), 'cluster must be an array of seed nodes'),
]);

export const ModelNameSchema = z.string().regex(MODEL_NAME_PATTERN, 'letters, digits, ".", "_", "-"; 1..128 characters');

/** Key prefix: the one rule of every component (KEY_PREFIX_PATTERN). */
export const KeyPrefixSchema = z.string().regex(KEY_PREFIX_PATTERN, `must be ${KEY_PREFIX_RULE}`);

export const LoggerSchema = z.custom<Logger>(
  (v) => typeof v === 'object' && v !== null && typeof (v as Logger).error === 'function',
  'must be a pino logger',
);

/**
 * What the client's and worker's `telemetry` option takes: BullMQ's
 * `Telemetry` interface (e.g. `new BullMQOtel()` from bullmq-otel), by its
 * two members. Declared by shape rather than imported from bullmq: the
 * published client and worker bundle BullMQ and do not depend on it, so
 * their type declarations must not name it (a consumer's tsc would not find
 * it). Where it is passed to BullMQ, BullMQ's own type is checked against it.
 */
export interface BullMQTelemetry {
  tracer: object;
  contextManager: object;
}

/**
 * The `telemetry` option, passed through to BullMQ. Checked loosely: an
 * object with the interface's two members, so that passing the class itself
 * or a bare OpenTelemetry tracer fails at construction rather than inside
 * BullMQ at the first job; the rest is BullMQ's to use.
 */
export const TelemetrySchema = z.custom<BullMQTelemetry>(
  (v) => typeof v === 'object' && v !== null && typeof (v as { tracer?: unknown }).tracer === 'object' && typeof (v as { contextManager?: unknown }).contextManager === 'object',
  "must be a BullMQ Telemetry object (with tracer and contextManager), e.g. new BullMQOtel()",
);

/** OptimizationConfig values; validated by OptimizationConfig itself (env first, then these). */
export const ConfigObjectSchema = z.object({}).passthrough();

/**
 * zod pieces shared by the option schemas of the client and the worker, so
 * both accept and reject the same connection, model, prefix and logger values
 * with the same messages.
 */
import { z } from 'zod';
import type { Logger } from './logger.js';
import { MODEL_NAME_PATTERN } from './protocol/keys.js';

/** `redis://` / `rediss://` URL, or an ioredis options object. */
export const RedisConnectionSchema = z.union([
  z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'),
  z.object({}).passthrough(),
]);

export const ModelNameSchema = z.string().regex(MODEL_NAME_PATTERN, 'letters, digits, ".", "_", "-"; 1..128 characters');

/** Key prefix: no braces (they would break the model's hash tag) and no spaces. */
export const KeyPrefixSchema = z.string().min(1).max(64).regex(/^[^{}\s]+$/, 'no braces or spaces');

export const LoggerSchema = z.custom<Logger>(
  (v) => typeof v === 'object' && v !== null && typeof (v as Logger).error === 'function',
  'must be a pino logger',
);

/** OptimizationConfig values; validated by OptimizationConfig itself (env first, then these). */
export const ConfigObjectSchema = z.object({}).passthrough();

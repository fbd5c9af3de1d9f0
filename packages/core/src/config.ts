/**
 * `OptimizationConfig`: the original specification's configuration, as one
 * zod schema. Parsed once at construction; an invalid value throws one
 * `ConfigError` that lists every bad field with its allowed range.
 */
import { z } from 'zod';
import { ConfigError, type ConfigIssue } from './errors.js';

export const Quantization = z.enum(['FP32', 'FP16', 'INT8']);
export type Quantization = z.infer<typeof Quantization>;
export const QUANTIZATIONS: readonly Quantization[] = Quantization.options;

/** All defaults in one place (the original specification's values). */
export const OPTIMIZATION_DEFAULTS = Object.freeze({
  quantization: 'FP32' as Quantization,
  maxBatchSize: 32,
  batchTimeoutMs: 100,
  enableCaching: true,
  cacheMaxSize: 1000,
  cacheMaxBytes: 268_435_456,
  numWorkers: 4,
  maxQueueLength: 0,
});

export const OptimizationConfigSchema = z
  .object({
    /** Numeric precision of the model; part of the cache namespace. Default FP32. */
    quantization: Quantization.default(OPTIMIZATION_DEFAULTS.quantization),
    /** Largest batch handed to the model, in items. 1..4096, default 32. */
    maxBatchSize: z.number().int().min(1).max(4096).default(OPTIMIZATION_DEFAULTS.maxBatchSize),
    /** Longest time the oldest pending item waits for its batch to fill, in ms. 0..60000, default 100. */
    batchTimeoutMs: z.number().min(0).max(60_000).default(OPTIMIZATION_DEFAULTS.batchTimeoutMs),
    /** Whether results are cached (and identical in-flight requests share one computation). Default true. */
    enableCaching: z.boolean().default(OPTIMIZATION_DEFAULTS.enableCaching),
    /** Most entries the result cache holds per model. 1..10,000,000, default 1000. */
    cacheMaxSize: z.number().int().min(1).max(10_000_000).default(OPTIMIZATION_DEFAULTS.cacheMaxSize),
    /**
     * Most bytes the result cache holds per model: each entry counts its output JSON (UTF-8 bytes)
     * plus its cache key. Least recently used entries are evicted past it; an output larger than
     * this by itself is not cached. 1024..2^40, default 256 MiB.
     */
    cacheMaxBytes: z.number().int().min(1024).max(2 ** 40).default(OPTIMIZATION_DEFAULTS.cacheMaxBytes),
    /** Most batches running at once per process. 1..256, default 4. */
    numWorkers: z.number().int().min(1).max(256).default(OPTIMIZATION_DEFAULTS.numWorkers),
    /**
     * Most requests of a model enqueued and not yet answered, counted in Redis across every client
     * and shard; past it `infer` rejects at once with INFERQ_QUEUE_FULL and writes nothing, and
     * tenants share it fairly. The bound is the operator's: a worker records its value in Redis
     * (`inferq:{m}:limits`) and every client applies it, re-read every second; a client's own
     * value can only lower it for that client. 0 = none of its own (default).
     */
    maxQueueLength: z.number().int().min(0).max(1_000_000_000).default(OPTIMIZATION_DEFAULTS.maxQueueLength),
  })
  .strict();

export type OptimizationConfig = z.infer<typeof OptimizationConfigSchema>;
export type OptimizationConfigInput = z.input<typeof OptimizationConfigSchema>;

/** Env variable for each field; the README's config table lists the same. */
export const OPTIMIZATION_ENV = Object.freeze({
  quantization: 'INFERQ_QUANTIZATION',
  maxBatchSize: 'INFERQ_MAX_BATCH_SIZE',
  batchTimeoutMs: 'INFERQ_BATCH_TIMEOUT_MS',
  enableCaching: 'INFERQ_ENABLE_CACHING',
  cacheMaxSize: 'INFERQ_CACHE_MAX_SIZE',
  cacheMaxBytes: 'INFERQ_CACHE_MAX_BYTES',
  numWorkers: 'INFERQ_NUM_WORKERS',
  maxQueueLength: 'INFERQ_MAX_QUEUE_LENGTH',
} satisfies Record<keyof OptimizationConfig, string>);

/** Turns a zod failure into one ConfigError naming every bad field. */
export function toConfigError(component: string, error: z.ZodError, fieldNames: Record<string, string> = {}): ConfigError {
  const issues: ConfigIssue[] = error.issues.map((issue) => {
    const path = issue.path.join('.') || '(root)';
    const shown = fieldNames[path] ? `${path} (${fieldNames[path]})` : path;
    return { field: shown, message: describeIssue(issue) };
  });
  return new ConfigError(component, issues);
}

function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'too_small':
      return `${issue.message}; allowed: ${issue.inclusive === false ? '>' : '>='} ${String(issue.minimum)}`;
    case 'too_big':
      return `${issue.message}; allowed: ${issue.inclusive === false ? '<' : '<='} ${String(issue.maximum)}`;
    case 'unrecognized_keys':
      return `unknown option(s) ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
    default:
      return issue.message;
  }
}

/** Parses with `schema`, throwing a ConfigError that lists every bad field. */
export function parseConfig<S extends z.ZodType>(
  component: string,
  schema: S,
  input: unknown,
  fieldNames: Record<string, string> = {},
): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw toConfigError(component, result.error, fieldNames);
  return result.data;
}

export function parseOptimizationConfig(input: OptimizationConfigInput = {}): OptimizationConfig {
  return Object.freeze(parseConfig('OptimizationConfig', OptimizationConfigSchema, input, OPTIMIZATION_ENV));
}

/**
 * Reads `INFERQ_*` variables. Values are converted by the field's type; a
 * value that does not convert is passed through as a string so the schema
 * reports it with the env variable's name.
 */
export function optimizationConfigFromEnv(env: NodeJS.ProcessEnv = process.env): OptimizationConfigInput {
  const out: Record<string, unknown> = {};
  for (const [field, name] of Object.entries(OPTIMIZATION_ENV)) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    out[field] = convertEnvValue(field as keyof OptimizationConfig, raw.trim());
  }
  return out as OptimizationConfigInput;
}

function convertEnvValue(field: keyof OptimizationConfig, raw: string): unknown {
  if (field === 'quantization') return raw.toUpperCase();
  if (field === 'enableCaching') {
    const v = raw.toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off'].includes(v)) return false;
    return raw;
  }
  const n = Number(raw);
  return Number.isFinite(n) ? n : raw;
}

/** Env first, then explicit values on top; parsed and frozen. */
export function loadOptimizationConfig(
  overrides: OptimizationConfigInput = {},
  env: NodeJS.ProcessEnv = process.env,
): OptimizationConfig {
  return parseOptimizationConfig({ ...optimizationConfigFromEnv(env), ...stripUndefined(overrides) });
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

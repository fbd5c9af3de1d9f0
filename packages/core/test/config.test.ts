import { describe, expect, it } from 'vitest';
import { ConfigError, ErrorCode, OPTIMIZATION_DEFAULTS, loadOptimizationConfig, optimizationConfigFromEnv, parseOptimizationConfig } from '../src/index.js';

describe('OptimizationConfig', () => {
  it("has the original specification's defaults", () => {
    expect(parseOptimizationConfig()).toEqual({
      quantization: 'FP32',
      maxBatchSize: 32,
      batchTimeoutMs: 100,
      enableCaching: true,
      cacheMaxSize: 1000,
      cacheMaxBytes: 268_435_456,
      numWorkers: 4,
      maxQueueLength: 0,
    });
    expect(parseOptimizationConfig()).toEqual(OPTIMIZATION_DEFAULTS);
  });

  it('throws one ConfigError listing every bad field with its allowed range', () => {
    let err: unknown;
    try {
      parseOptimizationConfig({ maxBatchSize: 0, batchTimeoutMs: -1, numWorkers: 1.5, quantization: 'FP8' as never, cacheMaxSize: 1e9 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const ce = err as ConfigError;
    expect(ce.code).toBe(ErrorCode.CONFIG_INVALID);
    expect(ce.issues.map((i) => i.field.split(' ')[0]).sort()).toEqual(['batchTimeoutMs', 'cacheMaxSize', 'maxBatchSize', 'numWorkers', 'quantization']);
    expect(ce.message).toMatch(/maxBatchSize \(INFERQ_MAX_BATCH_SIZE\):.*>= 1/);
    expect(ce.message).toMatch(/cacheMaxSize \(INFERQ_CACHE_MAX_SIZE\):.*<= 10000000/);
    expect(ce.message).toMatch(/quantization.*FP32/);
  });

  it('rejects unknown options (a typo is not silently ignored)', () => {
    expect(() => parseOptimizationConfig({ maxBatchSise: 3 } as never)).toThrow(/unknown option\(s\) 'maxBatchSise'/);
  });

  it('loads INFERQ_* env variables, explicit values win', () => {
    const env = {
      INFERQ_MAX_BATCH_SIZE: '64',
      INFERQ_BATCH_TIMEOUT_MS: '2.5',
      INFERQ_ENABLE_CACHING: 'off',
      INFERQ_QUANTIZATION: 'int8',
      INFERQ_NUM_WORKERS: '2',
    };
    expect(optimizationConfigFromEnv(env)).toEqual({ maxBatchSize: 64, batchTimeoutMs: 2.5, enableCaching: false, quantization: 'INT8', numWorkers: 2 });
    expect(loadOptimizationConfig({}, { INFERQ_CACHE_MAX_BYTES: '1048576' }).cacheMaxBytes).toBe(1_048_576);
    expect(() => loadOptimizationConfig({}, { INFERQ_CACHE_MAX_BYTES: '0' })).toThrow(/cacheMaxBytes \(INFERQ_CACHE_MAX_BYTES\):.*>= 1024/);
    expect(() => parseOptimizationConfig({ cacheMaxBytes: 2 ** 40 + 1 })).toThrow(/cacheMaxBytes.*<= 1099511627776/);
    expect(loadOptimizationConfig({ numWorkers: 8 }, env)).toMatchObject({ maxBatchSize: 64, numWorkers: 8, enableCaching: false });
  });

  it('names the env variable of a bad env value', () => {
    expect(() => loadOptimizationConfig({}, { INFERQ_MAX_BATCH_SIZE: 'lots', INFERQ_ENABLE_CACHING: 'maybe' })).toThrow(
      /maxBatchSize \(INFERQ_MAX_BATCH_SIZE\)[\s\S]*enableCaching \(INFERQ_ENABLE_CACHING\)/,
    );
  });

  it('is frozen', () => {
    const c = parseOptimizationConfig();
    expect(Object.isFrozen(c)).toBe(true);
  });
});

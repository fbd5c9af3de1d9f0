/**
 * The model contract of inferq: what a worker calls once per batch.
 *
 * A worker hands a model every input of a batch at once and expects exactly
 * one output per input, in the same order. Batching is the point of inferq:
 * a real model costs a fixed amount per call plus a (much smaller) amount per
 * item, so one call on 32 inputs is far cheaper than 32 calls on one.
 */
import type { Quantization } from './config.js';

/**
 * A model called once per batch.
 *
 * Contract (checked by the worker, not by the type system):
 * - resolves to an array of exactly `inputs.length` entries, slot `i` for `inputs[i]`;
 * - an `Error` in a slot fails that item alone; the other items still succeed;
 * - a thrown error or rejected promise fails every item of the batch.
 *
 * Outputs travel through Redis as JSON, so they should be JSON-serialisable
 * (plain numbers, arrays, objects; no typed arrays, NaN or Infinity).
 */
export type BatchModel<I = unknown, O = unknown> = (inputs: I[]) => Promise<ReadonlyArray<O | Error>>;

/**
 * A model with a lifecycle and an identity: what a model module passed to the
 * `inferq-worker` CLI may default-export (instead of a bare {@link BatchModel}).
 */
export interface ModelModule<I = unknown, O = unknown> {
  /** Called once per batch; see {@link BatchModel}. */
  run: BatchModel<I, O>;
  /**
   * Loads the model (weights, sessions). The worker calls it once before it
   * takes jobs, so the first batch does not pay the load time and a model
   * that cannot load fails at startup rather than on every job. Optional:
   * a module without it loads lazily or needs no loading.
   */
  init?: () => Promise<void>;
  /** Releases what `init` acquired. The worker calls it once on shutdown, after the last batch. */
  close?: () => Promise<void>;
  /** The model's name, for logs and as the default model name of a worker. */
  name?: string;
  /**
   * The precision the model runs at. Part of the cache namespace, so outputs
   * of an INT8 model are never served to callers of the FP32 one.
   */
  quantization?: Quantization;
  /**
   * Opt-in fast path for tensor models. A client sends a flat array of
   * finite numbers (a `number[]`, Float32Array, Float64Array) in compact form
   * (the float64 values, not JSON text). Without this flag `run` gets such
   * an input as the `number[]` it always got; with it, as a `Float64Array`
   * holding the same values (-0 as 0), which a model that copies inputs into
   * a tensor reads directly (onnxModel sets it). Other inputs are unchanged.
   * A crash probe (a fresh process running one suspect input) still passes
   * the `number[]`: it receives the input as canonical JSON text.
   */
  typedInputs?: boolean;
}

/** What a model module may default-export: a bare batch function or a {@link ModelModule}. */
export type ModelExport<I = unknown, O = unknown> = BatchModel<I, O> | ModelModule<I, O>;

/**
 * The scenarios of a run. Rows are grouped by model, so each system's row sits
 * next to the baselines it is divided by.
 */
import type { ModelKind, SystemId } from './settings.js';

export interface ScenarioDef {
  id: string;
  /** (a) no-op, (b) ONNX, (c) cache. */
  group: 'noop' | 'onnx' | 'cache';
  system: SystemId;
  model: ModelKind;
  caching: boolean;
  /** Share of requests repeating an earlier input. */
  repeatFraction: number;
  /** Time PING round trips from the clients during the window (for the cache-hit goal). */
  probePing: boolean;
  /** Shown in the table's first column. */
  title: string;
}

const plain = (group: 'noop' | 'onnx', system: SystemId): ScenarioDef => ({
  id: `${group}-${system}`,
  group,
  system,
  model: group,
  caching: false,
  repeatFraction: 0,
  probePing: false,
  title: group === 'noop' ? '(a) no-op' : '(b) ONNX',
});

export const SCENARIOS: readonly ScenarioDef[] = Object.freeze([
  plain('noop', 'bullmq'),
  plain('noop', 'inferq'),
  plain('noop', 'floor'),
  plain('onnx', 'bullmq'),
  plain('onnx', 'inferq'),
  plain('onnx', 'floor'),
  {
    // The ONNX model: a cache is worth having when a miss is expensive.
    id: 'cache-inferq',
    group: 'cache',
    system: 'inferq',
    model: 'onnx',
    caching: true,
    repeatFraction: 0.5,
    probePing: true,
    title: '(c) ONNX 50% repeats, cache on',
  },
]);

/** `--only`: scenario ids, groups or systems, comma separated. */
export function selectScenarios(only: readonly string[] | undefined): ScenarioDef[] {
  if (!only || only.length === 0) return [...SCENARIOS];
  const unknown = only.filter((t) => !SCENARIOS.some((s) => s.id === t || s.group === t || s.system === t));
  if (unknown.length) {
    throw new Error(`--only: unknown ${unknown.join(', ')}; use scenario ids (${SCENARIOS.map((s) => s.id).join(', ')}), groups (noop, onnx, cache) or systems (bullmq, inferq, floor)`);
  }
  return SCENARIOS.filter((s) => only.some((t) => s.id === t || s.group === t || s.system === t));
}

/**
 * Where each system's module lives. Imported on demand: a child process loads
 * only its own system (a list-queue client never loads BullMQ or inferq).
 */
import { fileURLToPath } from 'node:url';
import type { SystemId } from '../settings.js';
import type { SystemDefinition } from './system.js';

/** The one entry script of bench client and worker processes. */
export const CHILD_SCRIPT = fileURLToPath(new URL('../child.ts', import.meta.url));

export const SYSTEM_IDS: readonly SystemId[] = Object.freeze(['bullmq', 'bullmq-batched', 'inferq', 'floor']);

/** How the table names each system. */
export const SYSTEM_LABELS: Readonly<Record<SystemId, string>> = Object.freeze({
  bullmq: 'plain BullMQ',
  'bullmq-batched': 'BullMQ + batching',
  inferq: 'inferq',
  floor: 'floor (list queue)',
});

export async function loadSystem(id: SystemId): Promise<SystemDefinition> {
  switch (id) {
    case 'bullmq':
      return (await import('./bullmq-plain.js')).bullmqPlain;
    case 'bullmq-batched':
      return (await import('./bullmq-batched.js')).bullmqBatched;
    case 'inferq':
      return (await import('./inferq.js')).inferq;
    case 'floor':
      return (await import('./list-queue.js')).listQueue;
  }
}

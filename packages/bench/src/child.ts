/**
 * Entry point of every client process and of the plain-BullMQ and list-queue
 * worker processes (inferq's workers run its real CLI instead):
 *
 *   node --conditions=source --import tsx packages/bench/src/child.ts '<ChildConfig as JSON>'
 *
 * One entry for all, so the parent spawns them all the same way (testkit's
 * spawnNode, ended by pid); the system's module is imported on demand so a
 * list-queue client does not pay for loading BullMQ.
 */
import { runLoadClient } from './load-client.js';
import type { ChildConfig } from './settings.js';
import { loadSystem } from './systems/registry.js';

async function main(): Promise<void> {
  const arg = process.argv[2];
  if (!arg) throw new Error('usage: child.ts <config json>');
  const cfg = JSON.parse(arg) as ChildConfig;
  const system = await loadSystem(cfg.system);
  if (cfg.role === 'client') {
    await runLoadClient(system, cfg);
  } else {
    if (!system.runWorker) throw new Error(`system ${system.id} has no bench worker (it runs its own CLI)`);
    await system.runWorker(cfg);
  }
}

main().catch((err: unknown) => {
  console.error(`bench child (${process.argv[2]?.slice(0, 300) ?? ''}) failed:`, err);
  process.exit(1);
});

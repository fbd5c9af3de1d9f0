/**
 * `@inferq/core/protocol`: everything a client and a worker say to each
 * other through Redis, in one place — the key layout, the request envelope,
 * result lines and payloads, the scripts that claim, open, settle and check
 * flights, the inbox read, deadlines on Redis time, and the model contract.
 * docs/architecture.md draws the whole path.
 */
export * from './keys.js';
export * from './identity.js';
export * from './redis-clock.js';
export * from './envelope.js';
export * from './compact-input.js';
export * from './results.js';
export * from './claim.js';
export * from './settle.js';
export * from './batch-open.js';
export * from './client-tick.js';
export * from './inbox.js';
export * from './queue-room.js';
export * from './priority.js';
export * from './shards.js';
export * from './worker-registry.js';
export * from './model-contract.js';

export * from './errors.js';
export * from './config.js';
export * from './redis-keys.js';
export * from './canonical-json.js';
export * from './cache-key.js';
export * from './logger.js';
export * from './redis-connection.js';

export { InferenceClient, type ClientInferenceResult, type InferOptions } from './inference-client.js';
export { CLIENT_DEFAULTS, type InferenceClientOptions } from './client-options.js';
export { formatStatsTable } from './stats-table.js';

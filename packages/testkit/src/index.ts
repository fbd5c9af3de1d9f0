export { freePort } from './free-port.js';
export { RedisServerProcess, findRedisServerBinary, type RedisServerOptions } from './redis-server-process.js';
export {
  RedisClusterProcess,
  clusterSupport,
  findRedisCliBinary,
  keySlot,
  CLUSTER_SLOTS,
  type RedisClusterOptions,
  type RedisClusterNode,
  type RedisClusterMaster,
  type KillMasterOptions,
  type ClusterSupport,
} from './redis-cluster-process.js';
export { startTestRedis, HOW_TO_GET_REDIS, type TestRedis, type TestRedisKind, type TestRedisOptions } from './test-redis.js';
export {
  spawnNode,
  startWorkerProcess,
  REPO_ROOT,
  WORKER_CLI,
  CLIENT_CLI,
  WORKER_BIN,
  CLIENT_BIN,
  SOURCE_NODE_ARGS,
  type SpawnedProcess,
  type WorkerProcessOptions,
} from './child-process.js';
export { TcpProxy } from './tcp-proxy.js';
export { parsePrometheusText, type PromSample, type PromText } from './prometheus-text.js';
export { findChromiumBinary, HOW_TO_GET_CHROMIUM } from './chromium.js';
export { findPromtool, promtoolCheckMetrics, promtoolCheckExpressions, HOW_TO_GET_PROMTOOL, type PromtoolResult } from './promtool.js';

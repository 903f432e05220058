// The Engine contract run against the Redis engine, on a real redis-server started for it: each
// rig gets a key prefix of its own (a new instance "over the same store" shares its prefix).
import { afterAll, beforeAll } from 'vitest';
import { createRedisEngine, type RedisEngine } from '../../src/engine/redis/redis-engine.js';
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '../redis-server.js';
import { engineContract, type EngineFactoryOptions } from './contract.js';

let server: RedisServer;
let cluster: RedisCluster;
beforeAll(async () => {
  [server, cluster] = await Promise.all([startRedis(), startRedisCluster()]);
}, 30_000);
afterAll(async () => {
  await Promise.all([server?.stop(), cluster?.stop()]);
});

const prefixes = new WeakMap<RedisEngine, string>();
let stores = 0;
let nodes = 0;

/** Engines on one Redis server, or on the three masters of a Redis Cluster (any node of it as the seed). */
const redis = (on: 'server' | 'cluster') => async ({ clock, limits, sameStoreAs }: EngineFactoryOptions): Promise<RedisEngine> => {
  const prefix = sameStoreAs === undefined ? `t${stores++}:` : prefixes.get(sameStoreAs as RedisEngine)!;
  const url = on === 'server' ? server.url : cluster.urls[nodes % cluster.urls.length]!;
  const engine = await createRedisEngine({ ...limits, url, prefix, maxPayload: 1 << 20, node: `n${nodes++}`, cluster: on === 'cluster' }, clock);
  prefixes.set(engine, prefix);
  return engine;
};

const traits = { historySurvivesNewInstance: true, sharedBetweenInstances: true };
engineContract('redis engine', redis('server'), traits);
engineContract('redis engine on a Redis Cluster (sharded pub/sub)', redis('cluster'), traits);

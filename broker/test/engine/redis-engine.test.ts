// The Engine contract run against the Redis engine, on a real redis-server started for it: each
// rig gets a key prefix of its own (a new instance "over the same store" shares its prefix).
import { afterAll, beforeAll } from 'vitest';
import { createRedisEngine, type RedisEngine } from '../../src/engine/redis/redis-engine.js';
import { startRedis, type RedisServer } from '../redis-server.js';
import { engineContract, type EngineFactoryOptions } from './contract.js';

let server: RedisServer;
beforeAll(async () => {
  server = await startRedis();
}, 20_000);
afterAll(async () => {
  await server?.stop();
});

const prefixes = new WeakMap<RedisEngine, string>();
let stores = 0;
let nodes = 0;

async function redis({ clock, limits, sameStoreAs }: EngineFactoryOptions): Promise<RedisEngine> {
  const prefix = sameStoreAs === undefined ? `t${stores++}:` : prefixes.get(sameStoreAs as RedisEngine)!;
  const engine = await createRedisEngine({ ...limits, url: server.url, prefix, maxPayload: 1 << 20, node: `n${nodes++}` }, clock);
  prefixes.set(engine, prefix);
  return engine;
}

engineContract('redis engine', redis, { historySurvivesNewInstance: true, sharedBetweenInstances: true });

import { afterEach, describe, expect, it } from 'vitest';
import { redisCommand, startRedis, startRedisCluster, type RedisCluster, type RedisServer } from './redis-server.js';

// The helper the Redis engine's tests stand on: real redis-server processes, started, crashed,
// restarted and paused on demand.

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('startRedis', () => {
  let server: RedisServer | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it('answers PING on 127.0.0.1 and a port of its own', async () => {
    server = await startRedis();
    expect(server.port).not.toBe(6379);
    expect(server.url).toBe(`redis://127.0.0.1:${server.port}`);
    expect(await redisCommand(server.port, ['PING'])).toBe('PONG');
    expect(await redisCommand(server.port, ['SET', 'k', 'v'])).toBe('OK');
    expect(await redisCommand(server.port, ['GET', 'k'])).toBe('v');
  });

  it('restarts on the same port, as a new process, without its data (no persistence)', async () => {
    server = await startRedis();
    const { port, pid } = server;
    await redisCommand(port, ['SET', 'k', 'v']);
    await server.restart();
    expect(server.port).toBe(port);
    expect(server.pid).not.toBe(pid);
    expect(alive(pid)).toBe(false);
    expect(await redisCommand(port, ['PING'])).toBe('PONG');
    expect(await redisCommand(port, ['GET', 'k'])).toBeNull();
  });

  it('restarts after a kill -9 with the same arguments: an AOF server keeps what it acknowledged', async () => {
    server = await startRedis({ args: ['--appendonly', 'yes'] });
    const { port, pid } = server;
    expect(await redisCommand(port, ['SET', 'k', 'v'])).toBe('OK');
    await server.kill();
    expect(server.running).toBe(false);
    expect(alive(pid)).toBe(false);
    await expect(redisCommand(port, ['PING'])).rejects.toThrow(/ECONNREFUSED/);
    await server.restart();
    expect(server.running).toBe(true);
    expect(await redisCommand(port, ['GET', 'k'])).toBe('v');
  });

  it('pauses (answers nothing, connections held) and resumes', async () => {
    server = await startRedis();
    server.pause();
    await expect(redisCommand(server.port, ['PING'], 200)).rejects.toThrow(/no reply/);
    server.resume();
    expect(await redisCommand(server.port, ['PING'])).toBe('PONG');
    // stop() after pause() still stops it promptly (SIGCONT before SIGTERM).
    server.pause();
    const started = Date.now();
    await server.stop();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(alive(server.pid)).toBe(false);
  });
});

describe('startRedisCluster', () => {
  let cluster: RedisCluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  it('stands up three masters covering every slot, all reporting cluster_state:ok', async () => {
    cluster = await startRedisCluster();
    expect(cluster.nodes).toHaveLength(3);
    expect(cluster.urls).toEqual(cluster.nodes.map((n) => `redis://127.0.0.1:${n.port}`));
    for (const node of cluster.nodes) {
      const info = await redisCommand(node.port, ['CLUSTER', 'INFO']);
      expect(info).toContain('cluster_state:ok');
      expect(info).toContain('cluster_slots_assigned:16384');
      expect(info).toContain('cluster_known_nodes:3');
    }
    // A key lives on one node; the others redirect to it.
    const replies = await Promise.all(cluster.nodes.map((n) => redisCommand(n.port, ['SET', 'k', 'v']).catch((err: Error) => err.message)));
    expect(replies.filter((r) => r === 'OK')).toHaveLength(1);
    expect(replies.filter((r) => r?.includes('MOVED'))).toHaveLength(2);
    const pids = cluster.nodes.map((n) => n.pid);
    await cluster.stop();
    cluster = undefined;
    expect(pids.filter(alive)).toEqual([]);
  });
});

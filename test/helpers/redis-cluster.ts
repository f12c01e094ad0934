import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { loopbackServerArgs } from './redis-server.ts';

const run = promisify(execFile);

/** Small, so a failover settles in about a second; large enough that a busy machine does not fake one. */
const NODE_TIMEOUT_MS = 2_000;
const SETTLE_TIMEOUT_MS = 60_000;

/**
 * A Redis Cluster owned by a test: three masters on free ports, and one replica of the master that
 * owns the slot of `hashTag` (the prefix's), so a failover of that master can be tested.
 */
export interface TestRedisCluster {
  /** Every node's port: the three masters (as created), then the replica. */
  readonly ports: readonly number[];
  /** `REDIS_CLUSTER_NODES`: every node. */
  readonly nodesEnv: string;
  /** Seed nodes in the shape `createRedisConnection` takes. */
  readonly target: { nodes: { host: string; port: number }[] };
  /** The port of the node that is master of `hashTag`'s slot now. */
  masterPort(): Promise<number>;
  /**
   * CLUSTER FAILOVER on the replica of `hashTag`'s master (a manual failover: the replica catches up
   * with its master before taking over, so nothing acknowledged is lost); resolves once every node
   * agrees on the new master and says the cluster is ok. The old master becomes its replica.
   */
  failover(): Promise<void>;
  /** SIGTERM every node it started (by pid) and remove their folders. */
  stop(): Promise<void>;
}

/** A port whose cluster bus port (port + 10000) is free too. */
async function freeClusterPort(taken: Set<number>): Promise<number> {
  for (let tries = 0; tries < 200; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    if (taken.has(port) || taken.has(port + 10_000)) continue;
    if ((await isFree(port)) && (await isFree(port + 10_000))) {
      taken.add(port);
      taken.add(port + 10_000);
      return port;
    }
  }
  throw new Error('no free port pair for a cluster node');
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) throw new Error(`cluster: ${what} not reached: ${String(lastError ?? '')}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function startTestRedisCluster(options: { hashTag?: string } = {}): Promise<TestRedisCluster> {
  const hashTag = options.hashTag ?? '{inferq}';
  const dir = mkdtempSync(join(tmpdir(), 'inferq-cluster-'));
  const taken = new Set<number>();
  const ports: number[] = [];
  for (let i = 0; i < 4; i++) ports.push(await freeClusterPort(taken));
  const children: ChildProcess[] = [];
  const clients = new Map<number, Redis>();
  const client = (port: number): Redis => {
    let redis = clients.get(port);
    if (redis === undefined) {
      redis = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, lazyConnect: false });
      redis.on('error', () => undefined);
      clients.set(port, redis);
    }
    return redis;
  };

  const stop = async (): Promise<void> => {
    for (const redis of clients.values()) redis.disconnect();
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    for (const port of ports) {
      const nodeDir = join(dir, String(port));
      mkdirSync(nodeDir);
      const child = spawn(
        'redis-server',
        [
          ...loopbackServerArgs(port, nodeDir),
          '--appendonly',
          'yes',
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(nodeDir, 'nodes.conf'),
          '--cluster-node-timeout',
          String(NODE_TIMEOUT_MS),
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      children.push(child);
      await new Promise<void>((resolve, reject) => {
        let out = '';
        child.stdout?.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes('Ready to accept connections')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${out}`)));
      });
    }
    const masters = ports.slice(0, 3);
    const replicaPort = ports[3] as number;
    await run('redis-cli', [
      '--cluster',
      'create',
      ...masters.map((port) => `127.0.0.1:${port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    const slot = (await client(masters[0] as number).cluster('KEYSLOT', hashTag)) as number;
    const ownerPort = await until('slot owner known', async () =>
      ownerOf(client(masters[0] as number), slot),
    );
    const ownerId = (await client(ownerPort).cluster('MYID')) as string;
    await run('redis-cli', [
      '--cluster',
      'add-node',
      `127.0.0.1:${replicaPort}`,
      `127.0.0.1:${ownerPort}`,
      '--cluster-slave',
      '--cluster-master-id',
      ownerId,
    ]);
    await until('replica in sync', async () => {
      const info = await client(replicaPort).info('replication');
      return /master_link_status:up/.test(info) ? true : undefined;
    });
    await settled(ports, client, slot);

    return {
      ports,
      nodesEnv: ports.map((port) => `127.0.0.1:${port}`).join(','),
      target: { nodes: ports.map((port) => ({ host: '127.0.0.1', port })) },
      masterPort: () => until('slot owner known', async () => ownerOf(client(ports[0] as number), slot)),
      failover: async () => {
        const master = await until('slot owner', async () => ownerOf(client(ports[0] as number), slot));
        const replica = await until('a replica of the slot owner', async () =>
          replicaOf(client, ports, master),
        );
        await client(replica).cluster('FAILOVER');
        await until('failover done', async () => {
          const role = (await client(replica).role()) as unknown[];
          return role[0] === 'master' ? true : undefined;
        });
        await settled(ports, client, slot, replica);
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The port of the master serving `slot`, as `from` sees it. */
async function ownerOf(from: Redis, slot: number): Promise<number | undefined> {
  for (const [first, last, master] of await from.cluster('SLOTS'))
    if (slot >= first && slot <= last && master !== undefined) return master[1];
  return undefined;
}

/** A port among `ports` whose node replicates the master on `masterPort`. */
async function replicaOf(
  client: (port: number) => Redis,
  ports: readonly number[],
  masterPort: number,
): Promise<number | undefined> {
  for (const port of ports) {
    if (port === masterPort) continue;
    const role = (await client(port).role()) as unknown[];
    if (role[0] === 'slave' && Number(role[2]) === masterPort && role[3] === 'connected') return port;
  }
  return undefined;
}

/** Every node says the cluster is ok, knows every node, and (when given) names `owner` for `slot`. */
async function settled(
  ports: readonly number[],
  client: (port: number) => Redis,
  slot: number,
  owner?: number,
): Promise<void> {
  await until('cluster ok on every node', async () => {
    for (const port of ports) {
      const info = (await client(port).cluster('INFO')) as string;
      if (!/cluster_state:ok/.test(info) || !new RegExp(`cluster_known_nodes:${ports.length}\\b`).test(info))
        return undefined;
      if (owner !== undefined && (await ownerOf(client(port), slot)) !== owner) return undefined;
    }
    return true;
  });
}

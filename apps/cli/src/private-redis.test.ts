import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { redisAnswersPing } from './net.ts';
import {
  findOnPath,
  lockDataDir,
  redisServerArgs,
  socketPathIn,
  startPrivateRedis,
  waitForPreviousRedis,
} from './private-redis.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'inferq-cli-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('findOnPath', () => {
  it('finds an executable file in a PATH folder and ignores non-executable ones', () => {
    const bin = join(dir, 'bin');
    const other = join(dir, 'other');
    mkdirSync(bin);
    mkdirSync(other);
    writeFileSync(join(other, 'tool'), '');
    writeFileSync(join(bin, 'tool'), '#!/bin/sh\n');
    chmodSync(join(bin, 'tool'), 0o755);
    expect(findOnPath('tool', `${other}::${bin}`)).toBe(join(bin, 'tool'));
    expect(findOnPath('absent-tool', bin)).toBeUndefined();
  });
});

describe('redisServerArgs', () => {
  it('asks for loopback only, AOF every second, no eviction and no RDB snapshots', () => {
    expect(redisServerArgs(6400, '/data')).toEqual([
      '--port',
      '6400',
      '--bind',
      '127.0.0.1',
      '--dir',
      '/data',
      '--appendonly',
      'yes',
      '--appendfsync',
      'everysec',
      '--maxmemory-policy',
      'noeviction',
      '--save',
      '',
      '--loglevel',
      'warning',
      '--pidfile',
      '/data/redis-server.pid',
    ]);
  });

  it('adds an owner-only unix socket when given one, and only for a path a socket can hold', () => {
    expect(redisServerArgs(6400, '/data', '/data/redis.sock').slice(-4)).toEqual([
      '--unixsocket',
      '/data/redis.sock',
      '--unixsocketperm',
      '700',
    ]);
    expect(socketPathIn('/data')).toBe('/data/redis.sock');
    expect(socketPathIn(`/${'d'.repeat(120)}`)).toBeUndefined();
  });
});

describe('lockDataDir', () => {
  it('creates the folder, refuses a second holder that is alive, and releases', () => {
    const data = join(dir, 'redis');
    const release = lockDataDir(data);
    expect(readFileSync(join(data, 'inferq-serve.pid'), 'utf8')).toBe(String(process.pid));
    // A live process other than us (our parent) holding the lock.
    writeFileSync(join(data, 'inferq-serve.pid'), String(process.ppid));
    expect(() => lockDataDir(data)).toThrow(
      `${data} is in use by another \`inferq serve\` (pid ${process.ppid})`,
    );
    release();
    expect(existsSync(join(data, 'inferq-serve.pid'))).toBe(false);
  });

  it('takes over a lock left by a process that is gone', () => {
    mkdirSync(dir, { recursive: true });
    // Above the kernel's pid_max, so no process can have it.
    writeFileSync(join(dir, 'inferq-serve.pid'), '99999999');
    const release = lockDataDir(dir);
    expect(readFileSync(join(dir, 'inferq-serve.pid'), 'utf8')).toBe(String(process.pid));
    release();
  });
});

describe('startPrivateRedis', () => {
  it('starts a durable redis-server that answers PING and stops it with SHUTDOWN', async () => {
    const forwarded: string[] = [];
    const redis = await startPrivateRedis({
      dir,
      cwd: dir,
      signal: new AbortController().signal,
      forward: (line) => forwarded.push(line),
    });
    const port = Number(new URL(redis.url).port);
    expect(new URL(redis.url).hostname).toBe('127.0.0.1');
    expect(await redisAnswersPing('127.0.0.1', port)).toBe(true);
    expect(existsSync(join(dir, 'appendonlydir'))).toBe(true);
    // The same server on its socket, which only its owner may open.
    expect(redis.socketUrl).toBe(`unix://${join(dir, 'redis.sock')}`);
    const viaSocket = execFileSync('redis-cli', ['-s', join(dir, 'redis.sock'), 'PING'], {
      encoding: 'utf8',
    });
    expect(viaSocket.trim()).toBe('PONG');
    expect(statSync(join(dir, 'redis.sock')).mode & 0o777).toBe(0o700);

    // redis-server's own pid, not the guard's.
    expect(redis.pid).not.toBe(redis.child.pid);
    expect(readFileSync(`/proc/${redis.pid}/comm`, 'utf8').trim()).toBe('redis-server');

    await redis.stop();

    expect(redis.child.running).toBe(false);
    expect(await redis.child.exited).toEqual({ code: 0, signal: null });
    expect(await redisAnswersPing('127.0.0.1', port)).toBe(false);
    expect(existsSync(join(dir, 'redis-server.pid'))).toBe(false);
  });
});

describe('waitForPreviousRedis', () => {
  it('returns at once without a pid file or with a dead pid, and refuses a live one', async () => {
    await waitForPreviousRedis(dir);
    writeFileSync(join(dir, 'redis-server.pid'), '99999999');
    await waitForPreviousRedis(dir);
    writeFileSync(join(dir, 'redis-server.pid'), String(process.ppid));
    await expect(waitForPreviousRedis(dir, 200)).rejects.toThrow(
      `a redis-server (pid ${process.ppid}) still uses ${dir}: stop it, or pass another --data-dir`,
    );
  });
});

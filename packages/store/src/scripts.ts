/// <reference path="./raw-imports.d.ts" />
import type { ChainableCommander } from 'ioredis';
import { type RedisConnection, SUBMIT_NOW_COMMAND } from './connection.ts';
import cancelLua from './lua/cancel-5.lua?raw';
import completeLua from './lua/complete-n.lua?raw';
import expireLua from './lua/expire-n.lua?raw';
import handBackLua from './lua/hand-back-n.lua?raw';
import libLua from './lua/lib.lua?raw';
import promoteLua from './lua/promote-n.lua?raw';
import renewLua from './lua/renew-1.lua?raw';
import resumeLua from './lua/resume-5.lua?raw';
import retryLua from './lua/retry-n.lua?raw';
import startLua from './lua/start-n.lua?raw';
import submitLua from './lua/submit-n.lua?raw';

export type Arg = string | Buffer | number;

export type SubmitReply = [Buffer, ...(Buffer | Buffer[] | number)[]];

/** A request a script ended, as it reports it (lib.lua `finishedRow`; finished.ts reads it). */
export type FinishedRow = (string | Buffer)[];

/** The request scripts as commands of a connection (`withScripts`). */
export interface ScriptCommands {
  inferqSubmitBuffer(...args: Arg[]): Promise<SubmitReply>;
  inferqSubmitNowBuffer(...args: Arg[]): Promise<SubmitReply>;
  inferqStartBuffer(...args: Arg[]): Promise<[[Buffer, Buffer, Buffer?][], FinishedRow[]]>;
  inferqComplete(...args: Arg[]): Promise<FinishedRow[][]>;
  inferqRetry(...args: Arg[]): Promise<number>;
  inferqPromote(...args: Arg[]): Promise<number>;
  inferqResume(...args: Arg[]): Promise<number>;
  inferqHandBack(...args: Arg[]): Promise<number>;
  inferqRenew(...args: Arg[]): Promise<string[]>;
  inferqExpire(...args: Arg[]): Promise<FinishedRow[]>;
  inferqCancel(...args: Arg[]): Promise<string | [string, FinishedRow]>;
  inferqWriteProbe(key: string): Promise<number>;
}

export type ScriptedRedis = RedisConnection & ScriptCommands;

/**
 * Registers every script that moves a request (packages/store/src/lua) on `redis` and returns it
 * typed with them; registering again (another class on the same connection) is harmless. Every key
 * a script knows of at call time is declared (a `-n` script takes the count first), so a cluster
 * client routes it to the master of the prefix's slot.
 */
export function withScripts(redis: RedisConnection): ScriptedRedis {
  const withLib = (lua: string): string => `${libLua}\n${lua}`;
  redis.defineCommand('inferqSubmit', { lua: submitLua });
  redis.defineCommand(SUBMIT_NOW_COMMAND, { lua: submitLua });
  redis.defineCommand('inferqStart', { lua: withLib(startLua) });
  redis.defineCommand('inferqComplete', { lua: withLib(completeLua) });
  redis.defineCommand('inferqRetry', { lua: withLib(retryLua) });
  redis.defineCommand('inferqPromote', { lua: promoteLua });
  redis.defineCommand('inferqResume', { numberOfKeys: 5, lua: resumeLua });
  redis.defineCommand('inferqHandBack', { lua: withLib(handBackLua) });
  redis.defineCommand('inferqRenew', { numberOfKeys: 1, lua: renewLua });
  redis.defineCommand('inferqExpire', { lua: withLib(expireLua) });
  redis.defineCommand('inferqCancel', { numberOfKeys: 5, lua: withLib(cancelLua) });
  // A declared script that may write: Redis refuses it as it would refuse a submit (OOM, MISCONF,
  // READONLY). Its key (untouched) sends it to the master that owns the prefix's slot in a cluster.
  redis.defineCommand('inferqWriteProbe', { numberOfKeys: 1, lua: '#!lua\nreturn 1' });
  return redis as ScriptedRedis;
}

/** exec() resolves even when commands in it failed (each reply an [error, result] pair): reject instead. */
export async function execOrThrow(pipeline: ChainableCommander): Promise<unknown[]> {
  const replies = (await pipeline.exec()) ?? [];
  const failed = replies.find(([error]) => error !== null);
  if (failed !== undefined) throw failed[0];
  return replies.map(([, value]) => value);
}

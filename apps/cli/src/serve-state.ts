import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { QueueBackendName } from '@inferq/store';
import { isAlive } from './private-redis.ts';
import { findRepoRoot } from './repo-root.ts';

/**
 * What a running `inferq serve` tells the other commands, in its data folder: its private Redis
 * listens on a new port at every start, so `inferq queue`, `inferq models reload` and
 * `inferq submit` read it here instead of someone copying a URL out of a log line.
 */
export interface ServeState {
  /** serve's pid: the file of a serve that no longer runs is ignored. */
  pid: number;
  /** `redis://127.0.0.1:<port>` of its private Redis. */
  redisUrl: string;
  /** The API's base URL, as on the `inferq ready:` line. */
  apiUrl: string;
  /** Its QUEUE_BACKEND: a command acts on that backend's queues (absent in a file of an older serve: streams). */
  queueBackend?: QueueBackendName;
}

export const SERVE_STATE_NAME = 'inferq-serve.json';

/** serve's data folder when none is given: `<repo>/.data/redis`. */
export function defaultDataDir(): string {
  return join(findRepoRoot(), '.data', 'redis');
}

export function writeServeState(dir: string, state: ServeState): () => void {
  const path = join(dir, SERVE_STATE_NAME);
  writeFileSync(path, `${JSON.stringify(state)}\n`);
  return () => rmSync(path, { force: true });
}

/** The state of the serve running from `dir`, or undefined (no file, unreadable, or serve is gone). */
export function readServeState(dir: string = defaultDataDir()): ServeState | undefined {
  let state: Partial<ServeState>;
  try {
    state = JSON.parse(readFileSync(join(dir, SERVE_STATE_NAME), 'utf8')) as Partial<ServeState>;
  } catch {
    return undefined;
  }
  if (typeof state.pid !== 'number' || typeof state.redisUrl !== 'string' || typeof state.apiUrl !== 'string')
    return undefined;
  return isAlive(state.pid) ? (state as ServeState) : undefined;
}

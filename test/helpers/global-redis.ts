import type { TestProject } from 'vitest/node';
import { startTestRedis } from './redis-server.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

/** One redis-server for the integration suite; each test isolates itself with a random key prefix. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const redis = await startTestRedis();
  project.provide('redisUrl', redis.url);
  return () => redis.stop();
}

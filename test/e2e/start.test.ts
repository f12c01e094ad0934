import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AllInOne, isProcessAlive, startAllInOne } from '../helpers/processes.ts';

/** Whether something accepts TCP connections at a redis:// URL. */
async function accepts(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('the all-in-one (`npm start` = inferq serve)', () => {
  let app: AllInOne;

  beforeAll(async () => {
    app = await startAllInOne();
  });

  afterAll(async () => {
    await app?.stop();
  });

  it('prints its URL on the ready line', () => {
    expect(app.url).toBe(`http://127.0.0.1:${app.port}`);
    expect(app.redis).toBeDefined();
  });

  it('is alive and ready', async () => {
    expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${app.url}/readyz`)).status).toBe(200);
  });

  it('serves the demo model repository', async () => {
    const response = await fetch(`${app.url}/v1/models`);
    expect(response.status).toBe(200);
    const body = (await response.json()) as { models: { name: string; ready: boolean }[] };
    expect(body.models.map((model) => model.name).sort()).toEqual([
      'noop',
      'ocr',
      'ppocr-cls',
      'ppocr-det',
      'ppocr-rec',
    ]);
    expect(body.models.every((model) => model.ready)).toBe(true);
  });

  it('stops on SIGTERM with exit code 0 and takes its redis-server with it', async () => {
    const redis = app.redis;
    if (redis === undefined) throw new Error('no private redis-server was reported');
    expect(isProcessAlive(redis.pid)).toBe(true);

    expect(await app.stop()).toBe(0);

    expect(isProcessAlive(redis.pid)).toBe(false);
    expect(await accepts(redis.url)).toBe(false);
    expect(app.output()).not.toContain('did not stop within');
  });
});

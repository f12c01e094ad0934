import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.ts';
import { createMetrics } from './metrics.ts';

/** Sample lines keyed by name and sorted labels, so assertions do not depend on label order. */
async function samples(metrics: ReturnType<typeof createMetrics>): Promise<Map<string, number>> {
  const result = new Map<string, number>();
  for (const line of (await metrics.registry.metrics()).split('\n')) {
    const match = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels = (match[2] ?? '').split(',').filter(Boolean).sort().join(',');
    result.set(`${match[1]}{${labels}}`, Number(match[3]));
  }
  return result;
}

describe('createMetrics', () => {
  it('exposes every inferq metric and the default Node.js metrics in its own registry', async () => {
    const metrics = createMetrics('api');
    metrics.requests.inc({ model: 'm', status: 'queued' });
    metrics.phaseSeconds.observe({ model: 'm', phase: 'total' }, 0.002);
    metrics.batchSize.observe({ model: 'm' }, 3);
    metrics.cacheHits.inc({ model: 'm' });
    metrics.cacheMisses.inc({ model: 'm' });
    metrics.coalesced.inc({ model: 'm' });
    metrics.httpRequestDuration.observe({ method: 'GET', route: '/healthz', status: '200' }, 0.001);
    const values = await samples(metrics);
    expect(Object.fromEntries([...values].filter(([key]) => key.startsWith('inferq_')))).toMatchObject({
      'inferq_requests_total{model="m",service="api",status="queued"}': 1,
      'inferq_request_phase_seconds_bucket{le="0.0025",model="m",phase="total",service="api"}': 1,
      'inferq_request_phase_seconds_bucket{le="0.001",model="m",phase="total",service="api"}': 0,
      'inferq_request_phase_seconds_bucket{le="0.0005",model="m",phase="total",service="api"}': 0,
      'inferq_request_phase_seconds_bucket{le="10",model="m",phase="total",service="api"}': 1,
      'inferq_batch_size_bucket{le="4",model="m",service="api"}': 1,
      'inferq_batch_size_bucket{le="2",model="m",service="api"}': 0,
      'inferq_batch_size_bucket{le="128",model="m",service="api"}': 1,
      'inferq_cache_hits_total{model="m",service="api"}': 1,
      'inferq_cache_misses_total{model="m",service="api"}': 1,
      'inferq_coalesced_total{model="m",service="api"}': 1,
      'inferq_http_request_duration_seconds_count{method="GET",route="/healthz",service="api",status="200"}': 1,
    });
    const text = await metrics.registry.metrics();
    expect(text).toContain('# TYPE inferq_queue_depth gauge');
    expect(text).toContain('# TYPE process_cpu_seconds_total counter');
  });

  it('keeps registries apart', async () => {
    const api = createMetrics('api');
    const worker = createMetrics('worker');
    api.requests.inc({ model: 'm', status: 'queued' });
    expect(await worker.registry.metrics()).not.toContain('inferq_requests_total{');
  });

  it('reads queue depth from its source at scrape time', async () => {
    const metrics = createMetrics('worker');
    let depths: [string, number][] = [
      ['a', 3],
      ['b', 0],
    ];
    metrics.setQueueDepthSource(async () => depths);
    let values = await samples(metrics);
    expect(values.get('inferq_queue_depth{model="a",service="worker"}')).toBe(3);
    expect(values.get('inferq_queue_depth{model="b",service="worker"}')).toBe(0);
    depths = [['a', 1]];
    values = await samples(metrics);
    expect(values.get('inferq_queue_depth{model="a",service="worker"}')).toBe(1);
    expect(values.has('inferq_queue_depth{model="b",service="worker"}')).toBe(false);
  });

  it('drops the queue depth series when the source fails, and still answers the scrape', async () => {
    const metrics = createMetrics('api');
    const errors: unknown[] = [];
    let fail = false;
    metrics.setQueueDepthSource(
      async () => {
        if (fail) throw new Error('redis down');
        return [['a', 2]];
      },
      (error) => errors.push(error),
    );
    expect((await samples(metrics)).get('inferq_queue_depth{model="a",service="api"}')).toBe(2);
    fail = true;
    expect((await samples(metrics)).has('inferq_queue_depth{model="a",service="api"}')).toBe(false);
    expect(errors).toEqual([new Error('redis down')]);
  });
  it('reads the backlog without capacity per model version at scrape time, and drops it when the source fails', async () => {
    const metrics = createMetrics('api');
    const errors: unknown[] = [];
    let backlogs: { model: string; version: number; backlog: number }[] = [
      { model: 'a', version: 1, backlog: 4 },
      { model: 'a', version: 2, backlog: 0 },
    ];
    metrics.setBacklogWithoutCapacitySource(
      async () => {
        if (backlogs.length === 0) throw new Error('redis down');
        return backlogs;
      },
      (error) => errors.push(error),
    );
    let values = await samples(metrics);
    expect(values.get('inferq_backlog_without_capacity{model="a",service="api",version="1"}')).toBe(4);
    expect(values.get('inferq_backlog_without_capacity{model="a",service="api",version="2"}')).toBe(0);
    backlogs = [{ model: 'a', version: 2, backlog: 1 }];
    values = await samples(metrics);
    expect(values.has('inferq_backlog_without_capacity{model="a",service="api",version="1"}')).toBe(false);
    expect(values.get('inferq_backlog_without_capacity{model="a",service="api",version="2"}')).toBe(1);
    backlogs = [];
    values = await samples(metrics);
    expect([...values.keys()].filter((key) => key.startsWith('inferq_backlog_without_capacity'))).toEqual([]);
    expect(errors).toEqual([new Error('redis down')]);
  });

  it('has no backlog series without a source (workers)', async () => {
    const text = await createMetrics('worker').registry.metrics();
    expect(text).toContain('# TYPE inferq_backlog_without_capacity gauge');
    expect(text).not.toContain('inferq_backlog_without_capacity{');
  });
});

describe('createLogger', () => {
  it('writes JSON lines at the configured level, tagged with the service, without credentials', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const logger = createLogger({ logLevel: 'warn' }, 'api', sink);
    logger.info('hidden');
    logger.warn({ req: { headers: { authorization: 'Bearer secret' } } }, 'shown');
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
    expect(entry).toMatchObject({
      level: 40,
      service: 'api',
      msg: 'shown',
      req: { headers: { authorization: '[redacted]' } },
    });
    expect(entry).not.toHaveProperty('pid');
  });
});

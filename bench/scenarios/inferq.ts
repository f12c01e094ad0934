import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { QueueBackend } from '@inferq/config';
import { unpackStandard } from '@inferq/protocol';
import { createQueue, queueName, RequestStore, StreamQueueAdmin } from '@inferq/store';
import { Redis } from 'ioredis';
import type { InferqDeployment } from '../contenders/inferq.ts';
import {
  ApiClient,
  describeRefusal,
  type HttpAnswer,
  type InferClient,
  readRecord,
  waitedOutcome,
} from '../lib/http.ts';
import type { DistinctInputs } from '../lib/inputs.ts';
import { LatencyHistogram } from '../lib/latency.ts';
import type { ProgressSink } from '../lib/load.ts';
import type { BenchModel } from '../lib/models.ts';
import { scrapeMetrics, sumSamples } from '../lib/prometheus.ts';
import type { CacheResult, CoalescingResult, OverheadResult, ThroughputResult } from '../lib/results.ts';
import type { BatchCounters, LoadTarget, ServerCounters } from './load-curves.ts';

/** QUEUE_PREFIX's default; the bench leaves the variable unset. */
const QUEUE_PREFIX = '{inferq}';
/** `Prefer: wait=N` of requests that want their result in the same call: far beyond any latency seen. */
const WAIT_SECONDS = 30;
/** P1 cold: the first requests after a start, of the overhead scenario's warm-up. */
export const COLD_REQUESTS = 300;
/** Connections of the open-loop pool: more than the requests in flight at saturation. */
export const OPEN_LOOP_CONNECTIONS = 256;

function countError(errors: Map<string, number>, reason: string): void {
  errors.set(reason, (errors.get(reason) ?? 0) + 1);
}

export async function workerBatchCounters(
  deployment: InferqDeployment,
  model: string,
): Promise<BatchCounters> {
  const scrapes = await Promise.all(deployment.workerMetricsUrls.map(scrapeMetrics));
  let batches = 0;
  let items = 0;
  for (const samples of scrapes) {
    batches += sumSamples(samples, 'inferq_batch_size_count', { model });
    items += sumSamples(samples, 'inferq_batch_size_sum', { model });
  }
  return { batches, items };
}

/** The workers' phase histograms (sum and count per phase) and objective counters for `model`. */
async function workerServerCounters(deployment: InferqDeployment, model: string): Promise<ServerCounters> {
  const scrapes = await Promise.all(deployment.workerMetricsUrls.map(scrapeMetrics));
  const counters: ServerCounters = { phases: {}, met: 0, missed: 0 };
  for (const samples of scrapes) {
    for (const phase of ['queue', 'batch_wait', 'inference', 'total']) {
      const entry = counters.phases[phase] ?? { sum: 0, count: 0 };
      counters.phases[phase] = entry;
      entry.sum += sumSamples(samples, 'inferq_request_phase_seconds_sum', { model, phase });
      entry.count += sumSamples(samples, 'inferq_request_phase_seconds_count', { model, phase });
    }
    counters.met += sumSamples(samples, 'inferq_latency_objective_total', { model, outcome: 'met' });
    counters.missed += sumSamples(samples, 'inferq_latency_objective_total', { model, outcome: 'missed' });
  }
  return counters;
}

async function workerSucceeded(deployment: InferqDeployment, model: string): Promise<number> {
  const scrapes = await Promise.all(deployment.workerMetricsUrls.map(scrapeMetrics));
  return scrapes.reduce(
    (sum, samples) => sum + sumSamples(samples, 'inferq_requests_total', { model, status: 'succeeded' }),
    0,
  );
}

async function apiRequests(deployment: InferqDeployment, model: string, status: string): Promise<number> {
  return sumSamples(await scrapeMetrics(`${deployment.apiUrl}/metrics`), 'inferq_requests_total', {
    model,
    status,
  });
}

/** Requests with a new distinct input each, waiting for their result with `Prefer: wait`. */
export function inferqLoadTarget(
  deployment: InferqDeployment,
  client: ApiClient,
  model: BenchModel,
  inputs: DistinctInputs,
): LoadTarget {
  return {
    send: async () => waitedOutcome(await client.infer(model.name, inputs.nextBody(), WAIT_SECONDS)),
    batchCounters: () => workerBatchCounters(deployment, model.name),
    serverCounters: () => workerServerCounters(deployment, model.name),
    apiCpuSeconds: async () =>
      sumSamples(await scrapeMetrics(`${deployment.apiUrl}/metrics`), 'process_cpu_seconds_total', {}),
  };
}

/**
 * P1: one client, one request at a time with `Prefer: wait=5`, each with a new input (so each runs
 * the model); overhead is the end-to-end time minus the inference time the record reports.
 */
export async function measureOverhead(
  deployment: InferqDeployment,
  model: BenchModel,
  inputs: DistinctInputs,
  counts: { warmup: number; measured: number },
  progress: ProgressSink,
  client: InferClient = new ApiClient(deployment.apiUrl, 1),
): Promise<OverheadResult> {
  const overhead = new LatencyHistogram();
  const cold = new LatencyHistogram();
  const endToEnd = new LatencyHistogram();
  const inference = new LatencyHistogram();
  const errors = new Map<string, number>();
  try {
    for (let i = 0; i < counts.warmup + counts.measured; i++) {
      const body = inputs.nextBody();
      const sentAt = performance.now();
      const answer = await client.infer(model.name, body, 5);
      const elapsed = performance.now() - sentAt;
      const outcome = waitedOutcome(answer);
      if (i < counts.warmup) {
        // The deployment is fresh when this scenario starts it: its first requests are the cold ones.
        if (i < COLD_REQUESTS && outcome.ok && outcome.inferMs !== undefined)
          cold.record(elapsed - outcome.inferMs);
        continue;
      }
      if (!outcome.ok || outcome.inferMs === undefined) {
        countError(errors, outcome.error ?? 'no timings.inferMs');
        continue;
      }
      endToEnd.record(elapsed);
      inference.record(outcome.inferMs);
      overhead.record(elapsed - outcome.inferMs);
      if (i % 25 === 0) progress(`${i - counts.warmup + 1}/${counts.measured} requests`);
    }
  } finally {
    await client.close();
  }
  return {
    model: model.name,
    requests: endToEnd.count,
    overhead: overhead.summary(),
    ...(cold.count > 0 ? { cold: cold.summary() } : {}),
    endToEnd: endToEnd.summary(),
    inference: inference.summary(),
    errors: Object.fromEntries(errors),
  };
}

/** The store over the bench's own connection: it reads and steers inferq's queue the way inferq does. */
function storeOver(redis: Redis): RequestStore {
  return new RequestStore({ redis, prefix: QUEUE_PREFIX, resultTtlSeconds: 86_400 });
}

/**
 * Events ever added to a model version's queue: the streams' entries, or BullMQ's events stream
 * (added, active, completed…). Any request that reaches the queue moves it; a cache hit does not.
 */
async function queueEvents(store: RequestStore, backend: QueueBackend, model: string): Promise<number> {
  if (backend === 'streams') return new StreamQueueAdmin(store).entriesAdded(model, 1);
  let info: unknown[];
  try {
    info = (await store.redis.xinfo(
      'STREAM',
      `${store.keys.bullPrefix}:${queueName(model, 1)}:events`,
    )) as unknown[];
  } catch (error) {
    if (/no such key/i.test(String(error))) return 0;
    throw error;
  }
  const index = info.indexOf('entries-added');
  return index >= 0 ? Number(info[index + 1]) : 0;
}

/**
 * P4: one input is computed once, then sent `requests` times, one at a time. Every answer must be a
 * `200` record with `cached: true`; the entries ever added to the model's queue streams (every
 * request that reaches the queue adds one) and the workers' batch counter must not move meanwhile.
 */
export async function measureCache(
  deployment: InferqDeployment,
  model: BenchModel,
  inputs: DistinctInputs,
  requests: number,
  progress: ProgressSink,
): Promise<CacheResult> {
  const client = new ApiClient(deployment.apiUrl, 1);
  const redis = new Redis(deployment.redisUrl, { maxRetriesPerRequest: 1 });
  const store = storeOver(redis);
  const latency = new LatencyHistogram();
  let cachedAnswers = 0;
  try {
    const body = inputs.nextBody();
    const first = waitedOutcome(await client.infer(model.name, body, WAIT_SECONDS));
    if (!first.ok) throw new Error(`the request that fills the cache failed: ${first.error}`);
    // Let the worker's own bookkeeping of that request settle first.
    await delay(250);
    const eventsBefore = await queueEvents(store, deployment.backend, model.name);
    const batchesBefore = await workerBatchCounters(deployment, model.name);
    const cachedBefore = await apiRequests(deployment, model.name, 'cached');
    for (let i = 0; i < requests; i++) {
      const sentAt = performance.now();
      const answer = await client.infer(model.name, body, 0);
      const elapsed = performance.now() - sentAt;
      if (answer.status === 200 && readRecord(answer.body).cached) {
        cachedAnswers++;
        latency.record(elapsed);
      }
      if (i % 100 === 0) progress(`${i + 1}/${requests} repeated requests`);
    }
    const eventsAfter = await queueEvents(store, deployment.backend, model.name);
    const batchesAfter = await workerBatchCounters(deployment, model.name);
    const cachedAfter = await apiRequests(deployment, model.name, 'cached');
    return {
      model: model.name,
      requests,
      latency: latency.summary(),
      cachedAnswers,
      queueEventsAdded: eventsAfter - eventsBefore,
      modelRuns: batchesAfter.batches - batchesBefore.batches,
      cachedCounter: cachedAfter - cachedBefore,
    };
  } finally {
    redis.disconnect();
    await client.close();
  }
}

function idOf(answer: HttpAnswer): string {
  const value = unpackStandard(answer.body) as { id?: unknown };
  if (typeof value.id !== 'string') throw new Error(`answer without an id (HTTP ${answer.status})`);
  return value.id;
}

/**
 * P5: `requests` identical new inputs submitted at once. The model's queue is paused while
 * they arrive, so all of them are in flight together however fast this machine is (the model could
 * otherwise finish the first before the last arrives, turning coalescing into cache hits); then it
 * is resumed and every result is read with `GET /v1/requests/{id}?wait=30`.
 */
export async function measureCoalescing(
  deployment: InferqDeployment,
  model: BenchModel,
  inputs: DistinctInputs,
  requests: number,
): Promise<CoalescingResult> {
  const client = new ApiClient(deployment.apiUrl, requests);
  const connection = new Redis(deployment.redisUrl, { maxRetriesPerRequest: null });
  const store = storeOver(connection);
  try {
    const body = inputs.nextBody();
    const batchesBefore = await workerBatchCounters(deployment, model.name);
    const succeededBefore = await workerSucceeded(deployment, model.name);
    const coalescedBefore = await apiRequests(deployment, model.name, 'coalesced');
    let answers: HttpAnswer[];
    const queue = createQueue({ backend: deployment.backend, store, jobAttempts: 1 });
    await queue.pause(model.name, 1);
    try {
      answers = await Promise.all(
        Array.from({ length: requests }, () => client.post(`/v1/models/${model.name}/infer`, body)),
      );
    } finally {
      await queue.resume(model.name, 1);
      await queue.close();
    }
    const refused = answers.find((answer) => answer.status !== 202);
    if (refused !== undefined) throw new Error(`a submit answered HTTP ${refused.status}, not 202`);
    const records = await Promise.all(
      answers.map(async (answer) => {
        const reply = await client.get(`/v1/requests/${idOf(answer)}?wait=${WAIT_SECONDS}`);
        if (reply.status !== 200) throw new Error(`GET /v1/requests/{id} answered HTTP ${reply.status}`);
        return readRecord(reply.body);
      }),
    );
    const firstOutput = records[0]?.firstOutput;
    const batchesAfter = await workerBatchCounters(deployment, model.name);
    const succeededAfter = await workerSucceeded(deployment, model.name);
    const coalescedAfter = await apiRequests(deployment, model.name, 'coalesced');
    return {
      model: model.name,
      requests,
      modelRuns: batchesAfter.batches - batchesBefore.batches,
      inferences: succeededAfter - succeededBefore,
      coalescedCounter: coalescedAfter - coalescedBefore,
      succeeded: records.filter((record) => record.status === 'succeeded').length,
      identicalOutputs:
        firstOutput !== undefined &&
        records.every((record) => record.firstOutput?.equals(firstOutput) === true),
    };
  } finally {
    connection.disconnect();
    await client.close();
  }
}

/**
 * One submission: the ids it got accepted (and, for a bulk body accepted in part, why each of the
 * others was refused), or why it was refused as a whole.
 */
export type SubmitOutcome = { ids: string[]; refused?: string[] } | { error: string };

/**
 * P6: `connections` clients submit without waiting for as long as the window lasts; a Redis
 * PSUBSCRIBE on `{inferq}:done:*` sees each request reach its terminal state. Throughput is the
 * accepted requests that reached one, divided by the time from the first submit to the last of
 * those completions, so a queue that only grows does not count as throughput.
 */
async function measureTerminalThroughput(
  deployment: InferqDeployment,
  options: {
    model: string;
    method: string;
    connections: number;
    windowMs: number;
    drainTimeoutMs: number;
    bulkSize?: number;
    submit: (client: ApiClient) => Promise<SubmitOutcome>;
  },
  progress: ProgressSink,
): Promise<ThroughputResult> {
  const subscriber = new Redis(deployment.redisUrl, { maxRetriesPerRequest: null });
  const client = new ApiClient(deployment.apiUrl, options.connections);
  const channelPrefix = `${QUEUE_PREFIX}:done:`;
  const finished = new Map<string, { at: number; succeeded: boolean }>();
  const accepted = new Set<string>();
  const errors = new Map<string, number>();
  let submitted = 0;
  let terminal = 0;
  let succeeded = 0;
  let lastTerminalAt = 0;
  const countTerminal = (entry: { at: number; succeeded: boolean }): void => {
    terminal++;
    if (entry.succeeded) succeeded++;
    lastTerminalAt = Math.max(lastTerminalAt, entry.at);
  };
  subscriber.on('pmessageBuffer', (_pattern: Buffer, channel: Buffer, message: Buffer) => {
    const id = channel.toString('latin1').slice(channelPrefix.length);
    const status = (unpackStandard(message) as { status?: unknown }).status;
    const entry = { at: performance.now(), succeeded: status === 'succeeded' };
    finished.set(id, entry);
    if (accepted.has(id)) countTerminal(entry);
  });
  try {
    await subscriber.psubscribe(`${channelPrefix}*`);
    const start = performance.now();
    const end = start + options.windowMs;
    const submitter = async (): Promise<void> => {
      while (performance.now() < end) {
        let outcome: SubmitOutcome;
        try {
          outcome = await options.submit(client);
        } catch (error: unknown) {
          outcome = { error: error instanceof Error ? error.message : String(error) };
        }
        submitted += options.bulkSize ?? 1;
        if ('error' in outcome) {
          countError(errors, outcome.error);
          // A refusal comes back at once: do not spin on it.
          await delay(10);
          continue;
        }
        for (const why of outcome.refused ?? []) countError(errors, why);
        for (const id of outcome.ids) {
          accepted.add(id);
          const entry = finished.get(id);
          if (entry !== undefined) countTerminal(entry);
        }
      }
    };
    const ticker = setInterval(
      () => progress(`${accepted.size} accepted, ${terminal} finished, ${submitted - accepted.size} refused`),
      250,
    );
    try {
      await Promise.all(Array.from({ length: options.connections }, submitter));
      const acceptedPerSecond = (accepted.size * 1000) / (performance.now() - start);
      const drainDeadline = performance.now() + options.drainTimeoutMs;
      while (terminal < accepted.size && performance.now() < drainDeadline) await delay(20);
      const elapsedMs = terminal > 0 ? lastTerminalAt - start : 0;
      for (let i = terminal; i < accepted.size; i++)
        countError(errors, 'not finished before the drain timeout');
      return {
        model: options.model,
        method: options.method,
        connections: options.connections,
        ...(options.bulkSize === undefined ? {} : { bulkSize: options.bulkSize }),
        submitted,
        accepted: accepted.size,
        terminal,
        succeeded,
        acceptedPerSecond,
        elapsedMs,
        throughputPerSecond: elapsedMs > 0 ? (terminal * 1000) / elapsedMs : 0,
        errors: Object.fromEntries(errors),
      };
    } finally {
      clearInterval(ticker);
    }
  } finally {
    subscriber.disconnect();
    await client.close();
  }
}

/**
 * The ids a submit answer accepted. A bulk answer has one entry per request of the body: an id, or
 * null for one that admission control refused (queue full, rate limit), whose problem is in
 * `rejected` under the same index.
 */
export function acceptedIds(answer: HttpAnswer, expected: number): SubmitOutcome {
  if (answer.status !== 202 && answer.status !== 200) return { error: describeRefusal(answer) };
  const value = unpackStandard(answer.body) as { id?: unknown; ids?: unknown; rejected?: unknown };
  const ids = expected === 1 && typeof value.id === 'string' ? [value.id] : value.ids;
  if (
    !Array.isArray(ids) ||
    ids.length !== expected ||
    !ids.every((id) => typeof id === 'string' || id === null)
  ) {
    return { error: `HTTP ${answer.status} without ${expected === 1 ? 'an id' : `${expected} ids`}` };
  }
  const taken = ids.filter((id): id is string => typeof id === 'string');
  if (taken.length === ids.length) return { ids: taken };
  const problems = new Map<number, string>();
  for (const entry of Array.isArray(value.rejected) ? value.rejected : []) {
    const { index, status, detail, title } = entry as Record<string, unknown>;
    const why = typeof detail === 'string' ? detail : typeof title === 'string' ? title : 'refused';
    if (typeof index === 'number')
      problems.set(index, `HTTP ${String(status)} in a bulk answer: ${why.slice(0, 120)}`);
  }
  const refused = ids.flatMap((id, index) =>
    id === null ? [problems.get(index) ?? 'refused in a bulk answer, without a problem'] : [],
  );
  return { ids: taken, refused };
}

/** P6, single submits: `POST /v1/models/{model}/infer` without waiting, over `connections` keep-alive connections. */
export function measureSingleThroughput(
  deployment: InferqDeployment,
  model: BenchModel,
  inputs: DistinctInputs,
  options: { connections: number; windowMs: number; drainTimeoutMs: number },
  progress: ProgressSink,
): Promise<ThroughputResult> {
  const path = `/v1/models/${model.name}/infer`;
  return measureTerminalThroughput(
    deployment,
    {
      model: model.name,
      method: `POST ${path}`,
      ...options,
      submit: async (client) => acceptedIds(await client.post(path, inputs.nextBody()), 1),
    },
    progress,
  );
}

/** P6, bulk: `POST /v1/models/{model}/infer:bulk` with `{ requests: [...] }` of `bulkSize` distinct inputs. */
export function measureBulkThroughput(
  deployment: InferqDeployment,
  model: BenchModel,
  inputs: DistinctInputs,
  options: { connections: number; windowMs: number; drainTimeoutMs: number; bulkSize: number },
  progress: ProgressSink,
): Promise<ThroughputResult> {
  const path = `/v1/models/${model.name}/infer:bulk`;
  return measureTerminalThroughput(
    deployment,
    {
      model: model.name,
      method: `POST ${path}`,
      ...options,
      submit: async (client) =>
        acceptedIds(await client.post(path, inputs.nextBulkBody(options.bulkSize)), options.bulkSize),
    },
    progress,
  );
}

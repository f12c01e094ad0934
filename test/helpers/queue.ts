/**
 * The worker's side of the queue for tests: a ModelWorker on a connection of its own, and, for tests
 * that act as a worker without running one, taking a request by its record (its stream and entry)
 * rather than through the consumer group, then starting it with the script a worker uses.
 */
import { randomBytes } from 'node:crypto';
import {
  closeConnection,
  createRedisConnection,
  QueueConsumer,
  type RequestStore,
  type StartOutcome,
} from '@inferq/store';
import { ModelWorker, type ModelWorkerOptions } from '../../apps/worker/src/model-worker.ts';

/** A started request with its payload, as a worker holds it. */
export type StartedRequest =
  | (Extract<StartOutcome, { state: 'run' }> & { payload: Buffer })
  | Exclude<StartOutcome, { state: 'run' }>;

/**
 * Starts `ids` (start-n.lua) as a worker that took them from their queue would, and returns each
 * one's outcome; a request that runs comes with its payload, read from its queue entry or its key.
 */
export async function startAsWorker(
  store: RequestStore,
  ids: readonly string[],
  now = Date.now(),
): Promise<StartedRequest[]> {
  const refs = await Promise.all(
    ids.map(async (id) => {
      const [stream, entry] = await store.redis.hmget(store.keys.request(id), 'q', 'entry');
      return { id, stream: stream ?? '', entry: entry ?? '' };
    }),
  );
  const entries = new Map<string, Buffer | undefined>();
  for (const ref of refs) {
    if (ref.entry === '') continue;
    const found = (await store.redis.xrangeBuffer(ref.stream, ref.entry, ref.entry))[0];
    entries.set(ref.id, fieldOf(found?.[1], 'p'));
  }
  const outcomes = await store.start(refs, now, new Set(ids.filter((id) => entries.get(id) === undefined)));
  return outcomes.map((outcome): StartedRequest => {
    if (outcome.state !== 'run') return outcome;
    const payload = entries.get(outcome.id) ?? outcome.payload;
    if (payload === undefined) throw new Error(`request ${outcome.id} runs but has no payload`);
    return { ...outcome, payload };
  });
}

function fieldOf(fields: Buffer[] | undefined, name: string): Buffer | undefined {
  if (!fields) return undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i]!.toString() === name) return fields[i + 1];
  return undefined;
}

/** A ModelWorker serving one model version over a blocking connection of its own, as the worker app runs one. */
export interface TestModelWorker {
  readonly worker: ModelWorker;
  readonly consumer: QueueConsumer;
  /** Stops the worker (finishing what runs, giving back what is formed) and its connection. */
  close(): Promise<void>;
}

export function startModelWorker(
  options: Omit<ModelWorkerOptions, 'consumer'> & { redisUrl: string; consumerName?: string },
): TestModelWorker {
  const { redisUrl, consumerName, ...workerOptions } = options;
  const blocking = createRedisConnection(redisUrl, 'worker');
  blocking.on('error', () => undefined);
  const consumer = new QueueConsumer({
    blocking,
    queue: options.store.queueKeys(options.version.name, options.version.version),
    consumer: consumerName ?? `test-${randomBytes(4).toString('hex')}`,
  });
  const worker = new ModelWorker({ ...workerOptions, consumer });
  worker.start();
  return {
    worker,
    consumer,
    close: async () => {
      await worker.close();
      await closeConnection(blocking);
    },
  };
}

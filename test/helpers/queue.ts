/**
 * The worker's side of the queue for tests: a ModelWorker on a connection of its own, and, for tests
 * that act as a worker without running one, taking a request by its record (its stream and entry)
 * rather than through the consumer group, then starting it with the script a worker uses.
 */
import { randomBytes } from 'node:crypto';
import {
  BullmqIntake,
  createRedisConnection,
  QueueConsumer,
  type QueueIntake,
  queueName,
  type RequestStore,
  type StartOutcome,
  StreamsIntake,
} from '@inferq/store';
import { intakeCapacity, ModelWorker, type ModelWorkerOptions } from '../../apps/worker/src/model-worker.ts';
import { queueRefOf, TEST_QUEUE_BACKEND } from './queue-backend.ts';

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
  const refs = await Promise.all(ids.map((id) => queueRefOf(store, id)));
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

/** A ModelWorker serving one model version over a connection of its own, as the worker app runs one. */
export interface TestModelWorker {
  readonly worker: ModelWorker;
  /** Stops the worker (finishing what runs, giving back what is formed) and its connection. */
  close(): Promise<void>;
}

/** A ModelWorker on the suite's queue backend (TEST_QUEUE_BACKEND). */
export function startModelWorker(
  options: Omit<ModelWorkerOptions, 'intake'> & {
    store: RequestStore;
    redisUrl: string;
    consumerName?: string;
  },
): TestModelWorker {
  const { redisUrl, consumerName, store, ...workerOptions } = options;
  const connection = createRedisConnection(redisUrl, 'worker');
  connection.on('error', () => undefined);
  const { name, version } = options.version;
  const capacity = intakeCapacity(options.version);
  let intake: QueueIntake;
  if (TEST_QUEUE_BACKEND === 'bullmq') {
    intake = new BullmqIntake({
      store,
      queueName: queueName(name, version),
      connection,
      model: name,
      capacity,
      logger: options.logger,
    });
  } else {
    const consumer = new QueueConsumer({
      blocking: connection,
      queue: store.queueKeys(name, version),
      consumer: consumerName ?? `test-${randomBytes(4).toString('hex')}`,
    });
    intake = new StreamsIntake({
      store,
      consumer,
      blocking: connection,
      model: name,
      version,
      capacity,
      logger: options.logger,
    });
  }
  const worker = new ModelWorker({ ...workerOptions, intake });
  worker.start();
  // The intake closes its connection with the worker.
  return { worker, close: () => worker.close() };
}

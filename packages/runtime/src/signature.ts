import type { DType, ModelSignature, TensorSpec } from '@inferq/protocol';
import { DTYPES } from '@inferq/protocol';
import ort from 'onnxruntime-node';

const KNOWN_DTYPES: ReadonlySet<string> = new Set(DTYPES);

function toSpec(metadata: ort.InferenceSession.ValueMetadata, modelPath: string): TensorSpec {
  if (!metadata.isTensor) {
    throw new Error(
      `${modelPath}: '${metadata.name}' is not a tensor; only tensor inputs and outputs are served`,
    );
  }
  if (!KNOWN_DTYPES.has(metadata.type)) {
    throw new Error(
      `${modelPath}: '${metadata.name}' has element type ${metadata.type}, which is not served`,
    );
  }
  return {
    name: metadata.name,
    dtype: metadata.type as DType,
    // onnxruntime names symbolic dims with strings (empty when unnamed); callers only need "dynamic"
    shape: metadata.shape.map((dim) => (typeof dim === 'number' && dim >= 0 ? dim : -1)),
  };
}

/**
 * Names, dtypes and shapes (-1 = dynamic) of a model's inputs and outputs, read by opening a throwaway
 * session without graph optimisation (the declared graph inputs and outputs do not depend on it).
 */
export async function readModelSignature(modelPath: string): Promise<ModelSignature> {
  const session = await ort.InferenceSession.create(modelPath, { graphOptimizationLevel: 'disabled' });
  try {
    return {
      inputs: session.inputMetadata.map((metadata) => toSpec(metadata, modelPath)),
      outputs: session.outputMetadata.map((metadata) => toSpec(metadata, modelPath)),
    };
  } finally {
    await session.release();
  }
}

import {
  DEFAULT_INPUT_LIMITS,
  decodeInferRequest,
  encodePayload,
  type InputLimits,
  requestBatchShape,
  validateInputs,
} from '@inferq/protocol';
import type { ModelVersion } from '@inferq/repository';
import type { DirectRequest } from '@inferq/store';

/**
 * A job a producer added to a model version's BullMQ queue itself (docs/api.md, "Producers beyond
 * HTTP"): its data is an infer request body as JSON, checked here exactly as the API checks one
 * (limits, the model's signature), and turned into the MessagePack payload and batch shape the
 * worker runs. Throws the client error the API would answer.
 */
export function directRequestOf(
  version: ModelVersion,
  body: Uint8Array,
  limits: InputLimits = DEFAULT_INPUT_LIMITS,
): DirectRequest {
  const request = decodeInferRequest(body, 'json', limits);
  validateInputs(request, version.signature);
  const batchShape = requestBatchShape(request.inputs, version.signature, version.config.maxBatchSize);
  return {
    payload: encodePayload({ inputs: request.inputs, outputs: request.outputs }),
    ...(batchShape === undefined ? {} : { batchShape }),
    ...(request.timeoutMs === undefined ? {} : { timeoutMs: request.timeoutMs }),
    ...(request.metadata === undefined ? {} : { metadata: request.metadata }),
  };
}

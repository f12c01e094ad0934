/** What the queue needs for one validated request: its parameters, cache use and batch shape. */
import { cacheKey, encodePayload, type InferRequestBody, requestBatchShape } from '@inferq/protocol';
import type { SubmitParams } from '@inferq/store';
import type { Servable } from './catalog.ts';

export function usesCache(body: InferRequestBody, model: Servable): boolean {
  return body.cache !== false && model.config.cache.enabled;
}

export function batchShapeFor(body: InferRequestBody, model: Servable): string | undefined {
  return requestBatchShape(body.inputs, model.signature, model.config.maxBatchSize);
}

export function submitParams(
  id: string,
  model: Servable,
  body: InferRequestBody,
  tenant: string,
  now: number,
  batchShape: string | undefined,
  encodedPayload?: Uint8Array,
): SubmitParams {
  const useCache = usesCache(body, model);
  return {
    id,
    model: model.name,
    version: model.version,
    tenant,
    // Hashing the inputs is the largest piece of the API's work on a large body (docs/performance.md,
    // P11): a request that neither reads nor fills the cache, nor coalesces, does not pay for it.
    cacheKey: useCache
      ? cacheKey({
          tenant,
          model: model.name,
          version: model.version,
          outputs: body.outputs,
          inputs: body.inputs,
        })
      : '',
    useCache,
    cacheTtlSeconds: model.config.cache.ttlSeconds,
    payload: encodedPayload ?? encodePayload({ inputs: body.inputs, outputs: body.outputs }),
    batchShape,
    priority: body.priority,
    deadline: body.timeoutMs === undefined ? undefined : now + body.timeoutMs,
    callbackChannel: body.callback?.channel,
    callbackUrl: body.callback?.url,
    metadata: body.metadata,
    now,
  };
}

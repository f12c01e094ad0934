/** Fixtures of the API's unit tests. */
import type { ModelSignature } from '@inferq/protocol';
import { resolveModelConfig } from '@inferq/repository';
import type { Servable } from './catalog.ts';

/** A servable version `name` v`version` with this signature and config.json (`maxBatchSize: 0` unless said). */
export function servable(
  signature: ModelSignature,
  config: Record<string, unknown> = {},
  extra: Partial<Servable> & { name?: string; version?: number } = {},
): Servable {
  const { name = 'm', version = 1, ...rest } = extra;
  return {
    name,
    version,
    path: `/models/${name}/${version}/model.onnx`,
    signature,
    config: resolveModelConfig({ maxBatchSize: 0, ...config }, 'config.json', signature),
    fingerprint: 'f',
    ...rest,
  };
}

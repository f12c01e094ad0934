import {
  type InferRequestBody,
  packStandard,
  type Tensor,
  type TensorData,
  tensorDataBytes,
  tensorDataToList,
  type WireFormat,
} from '@inferq/protocol';

function tensorToWire(tensor: Tensor, format: WireFormat): Record<string, unknown> {
  let data: unknown;
  if (format === 'json') data = tensorDataToList(tensor);
  else if (tensor.dtype === 'string') data = tensor.data;
  else data = tensorDataBytes(tensor.data as Exclude<TensorData, string[]>);
  return { dtype: tensor.dtype, shape: tensor.shape, data };
}

/**
 * An infer request body in the wire format (docs/api.md "Tensors on the wire"): JSON with element lists,
 * or standard MessagePack with each tensor's little-endian bytes as `bin`.
 */
export function encodeInferRequest(body: InferRequestBody, format: WireFormat): Uint8Array {
  return serialize(inferRequestToWire(body, format), format);
}

/** An `infer:bulk` body, `{ requests: [...] }`, in the wire format. */
export function encodeBulkInferRequest(bodies: InferRequestBody[], format: WireFormat): Uint8Array {
  return serialize({ requests: bodies.map((body) => inferRequestToWire(body, format)) }, format);
}

function serialize(wire: Record<string, unknown>, format: WireFormat): Uint8Array {
  if (format === 'json') return new TextEncoder().encode(JSON.stringify(wire));
  // packStandard returns a view of msgpackr's shared buffer, which the next pack overwrites.
  return packStandard(wire).slice();
}

function inferRequestToWire(body: InferRequestBody, format: WireFormat): Record<string, unknown> {
  const inputs: Record<string, unknown> = {};
  for (const [name, tensor] of Object.entries(body.inputs)) inputs[name] = tensorToWire(tensor, format);
  const wire: Record<string, unknown> = { inputs };
  // Absent fields are left out: standard MessagePack has no `undefined`.
  for (const key of ['outputs', 'priority', 'timeoutMs', 'cache'] as const) {
    if (body[key] !== undefined) wire[key] = body[key];
  }
  if (body.callback !== undefined) wire.callback = withoutUndefined(body.callback);
  if (body.metadata !== undefined) wire.metadata = withoutUndefined(body.metadata);
  return wire;
}

function withoutUndefined(map: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(map).filter(([, value]) => value !== undefined));
}

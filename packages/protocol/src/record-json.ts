import { randomBytes } from 'node:crypto';
import { recordToWire } from './codec.ts';
import { tensorDataToList } from './tensor.ts';
import type { RequestRecord, Tensor } from './types.ts';

/**
 * Elements of a tensor turned into JSON text per piece. A 16 MB float32 result is 4 M elements: in
 * one piece its text takes seconds of a blocked event loop; in pieces of this size each one is a few
 * milliseconds, and the loop serves other requests in between.
 */
export const JSON_PIECE_ELEMENTS = 16_384;

/** Elements in all outputs of `record` (strings count one each). */
export function outputElements(record: RequestRecord): number {
  let count = 0;
  for (const tensor of Object.values(record.outputs ?? {})) count += tensor.data.length;
  return count;
}

/**
 * `encodeRecord(record, 'json')` as text in pieces, whose concatenation is exactly that JSON: the
 * record around each output's data, then the data `pieceElements` at a time. A caller writes each
 * piece and yields to the event loop before asking for the next.
 */
export function* encodeRecordJsonPieces(
  record: RequestRecord,
  pieceElements = JSON_PIECE_ELEMENTS,
): Generator<string, void, undefined> {
  const tensors = Object.entries(record.outputs ?? {});
  if (tensors.length === 0) {
    yield JSON.stringify(recordToWire(record, 'json'));
    return;
  }
  // Each output's data is a placeholder string no record can contain (a fresh random nonce); the
  // JSON text is cut at the placeholders and the data streamed in their place.
  const nonce = `\u0000${randomBytes(12).toString('hex')}:`;
  const placeholders: Record<string, unknown> = {};
  tensors.forEach(([name, tensor], index) => {
    placeholders[name] = { dtype: tensor.dtype, shape: tensor.shape.slice(), data: `${nonce}${index}` };
  });
  let text = JSON.stringify(recordToWire(record, 'json', placeholders));
  for (const [index, [, tensor]] of tensors.entries()) {
    const placeholder = JSON.stringify(`${nonce}${index}`);
    const at = text.indexOf(placeholder);
    yield `${text.slice(0, at)}[`;
    text = text.slice(at + placeholder.length);
    yield* dataPieces(tensor, pieceElements);
    yield ']';
  }
  yield text;
}

function* dataPieces(tensor: Tensor, pieceElements: number): Generator<string, void, undefined> {
  const { data } = tensor;
  for (let start = 0; start < data.length; start += pieceElements) {
    const end = Math.min(data.length, start + pieceElements);
    const part = (Array.isArray(data) ? data.slice(start, end) : data.subarray(start, end)) as Tensor['data'];
    const list = JSON.stringify(tensorDataToList({ dtype: tensor.dtype, shape: [end - start], data: part }));
    yield start === 0 ? list.slice(1, -1) : `,${list.slice(1, -1)}`;
  }
}

/** Media types of the two wire formats, and the choice of a response's format. */
import type { WireFormat } from './types.ts';

const MEDIA_TYPES: Readonly<Record<string, WireFormat>> = {
  'application/json': 'json',
  'application/msgpack': 'msgpack',
  'application/x-msgpack': 'msgpack',
  'application/vnd.msgpack': 'msgpack',
};

export function contentTypeOf(format: WireFormat): string {
  return format === 'json' ? 'application/json' : 'application/msgpack';
}

/** The wire format a `Content-Type` names, ignoring parameters and case; undefined when neither. */
export function formatFromContentType(contentType: string | undefined): WireFormat | undefined {
  if (contentType === undefined) return undefined;
  return MEDIA_TYPES[mediaTypeOf(contentType)];
}

/**
 * Responses use the request's format unless `Accept` prefers the other (higher q, with the most
 * specific range deciding each format's q, as RFC 9110 says). An Accept that admits neither format
 * still gets the request's format: every client of ours reads it, and errors are problem+json anyway.
 */
export function negotiateResponseFormat(accept: string | undefined, requestFormat: WireFormat): WireFormat {
  if (accept === undefined || accept.trim() === '') return requestFormat;
  const ranges = parseAccept(accept);
  const otherFormat: WireFormat = requestFormat === 'json' ? 'msgpack' : 'json';
  const requestQuality = qualityOf(requestFormat, ranges);
  const otherQuality = qualityOf(otherFormat, ranges);
  return otherQuality > requestQuality ? otherFormat : requestFormat;
}

interface AcceptRange {
  type: string;
  quality: number;
}

function mediaTypeOf(value: string): string {
  return (value.split(';', 1)[0] ?? '').trim().toLowerCase();
}

function parseAccept(accept: string): AcceptRange[] {
  const ranges: AcceptRange[] = [];
  for (const part of accept.split(',')) {
    const [typePart, ...parameters] = part.split(';');
    const type = (typePart ?? '').trim().toLowerCase();
    if (type === '') continue;
    let quality = 1;
    for (const parameter of parameters) {
      const [name, value] = parameter.split('=').map((piece) => piece.trim());
      if (name?.toLowerCase() === 'q' && value !== undefined) {
        const parsed = Number(value);
        quality = Number.isFinite(parsed) ? Math.min(Math.max(parsed, 0), 1) : 0;
      }
    }
    ranges.push({ type, quality });
  }
  return ranges;
}

/** q of the most specific range that matches `format`: exact type, then application/*, then * /*. */
function qualityOf(format: WireFormat, ranges: AcceptRange[]): number {
  let best = { specificity: -1, quality: 0 };
  for (const range of ranges) {
    let specificity = -1;
    if (MEDIA_TYPES[range.type] === format) specificity = 2;
    else if (range.type === 'application/*') specificity = 1;
    else if (range.type === '*/*') specificity = 0;
    if (
      specificity > best.specificity ||
      (specificity === best.specificity && range.quality > best.quality)
    ) {
      if (specificity >= 0) best = { specificity, quality: range.quality };
    }
  }
  return best.quality;
}

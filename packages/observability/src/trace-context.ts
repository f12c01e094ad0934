/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): reading `traceparent` and `tracestate`
 * headers, and the one string a request's context travels as through the queue (its record's `trace`
 * field, its queue entry, a BullMQ job) to the worker and the webhook: the traceparent, then a space
 * and the tracestate when there is one. Pure functions: nothing here loads OpenTelemetry.
 */

/** The fields of a valid `traceparent`. */
export interface TraceParent {
  /** 32 lower-case hex digits, not all zero. */
  traceId: string;
  /** 16 lower-case hex digits, not all zero: the caller's span. */
  spanId: string;
  /** The trace flags byte; bit 0 is `sampled`. */
  flags: number;
}

/** A request's W3C context as it travels: `traceparent` and, when there is one, `tracestate`. */
export interface TraceHeaders {
  traceparent: string;
  tracestate?: string;
}

const HEX_32 = /^[0-9a-f]{32}$/;
const HEX_16 = /^[0-9a-f]{16}$/;
const HEX_2 = /^[0-9a-f]{2}$/;
/** Version 00's length: `vv-<32>-<16>-ff`. */
const TRACEPARENT_LENGTH = 55;
const ZERO_TRACE_ID = '0'.repeat(32);
const ZERO_SPAN_ID = '0'.repeat(16);
/** Most list members a tracestate may have (W3C §3.3.1.1). */
const TRACESTATE_MAX_MEMBERS = 32;
const TRACESTATE_MAX_LENGTH = 512;
// A key is `simple-key` or `tenant@system`; a value is printable ASCII except ',' and '=', not
// ending in a space (W3C §3.3.1.3).
const TRACESTATE_KEY =
  /^(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})$/;
const TRACESTATE_VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/**
 * A `traceparent` header's fields, or undefined when it is not a valid one (the spec's rule: an
 * invalid traceparent is ignored, and the receiver starts a new trace). Versions above 00 are read
 * as version 00 (their first four fields), as the spec asks; version ff, upper-case hex, an all-zero
 * trace id or parent id, or a version 00 header with anything after its flags are invalid.
 */
export function parseTraceparent(header: string | undefined): TraceParent | undefined {
  if (header === undefined) return undefined;
  const value = header.trim();
  if (value.length < TRACEPARENT_LENGTH) return undefined;
  const version = value.slice(0, 2);
  if (!HEX_2.test(version) || version === 'ff') return undefined;
  if (
    version === '00'
      ? value.length !== TRACEPARENT_LENGTH
      : value.length > TRACEPARENT_LENGTH && value[55] !== '-'
  )
    return undefined;
  if (value[2] !== '-' || value[35] !== '-' || value[52] !== '-') return undefined;
  const traceId = value.slice(3, 35);
  const spanId = value.slice(36, 52);
  const flags = value.slice(53, 55);
  if (!HEX_32.test(traceId) || traceId === ZERO_TRACE_ID) return undefined;
  if (!HEX_16.test(spanId) || spanId === ZERO_SPAN_ID) return undefined;
  if (!HEX_2.test(flags)) return undefined;
  return { traceId, spanId, flags: Number.parseInt(flags, 16) };
}

/** Version 00 of a traceparent; only the `sampled` flag is kept (the others are reserved: set to 0). */
export function formatTraceparent(parent: TraceParent): string {
  return `00-${parent.traceId}-${parent.spanId}-0${parent.flags & 1}`;
}

/**
 * A `tracestate` header normalised (members joined by `,`, empty ones dropped), or undefined when it
 * is absent, empty or invalid: a malformed key or value, a repeated key, or more than 32 members; or
 * longer than 512 characters, the length W3C asks every platform to propagate at least. The cap
 * matters here: it is stored with every request (each of a bulk body's too) and sent on webhooks.
 * Several tracestate headers arrive joined by commas (Node does so), which is how the spec combines them.
 */
export function parseTracestate(header: string | undefined): string | undefined {
  if (header === undefined || header.length > TRACESTATE_MAX_LENGTH) return undefined;
  const members: string[] = [];
  const keys = new Set<string>();
  for (const raw of header.split(',')) {
    const member = raw.trim();
    if (member === '') continue;
    const equals = member.indexOf('=');
    if (equals <= 0) return undefined;
    const key = member.slice(0, equals);
    const value = member.slice(equals + 1);
    if (!TRACESTATE_KEY.test(key) || !TRACESTATE_VALUE.test(value) || keys.has(key)) return undefined;
    keys.add(key);
    if (members.push(member) > TRACESTATE_MAX_MEMBERS) return undefined;
  }
  if (members.length === 0) return undefined;
  return members.join(',');
}

/**
 * The context an HTTP request carries, packed (`packTraceContext`), or undefined when its traceparent
 * is absent or invalid (then its tracestate is ignored too, as the spec says).
 */
export function traceContextOfHeaders(
  traceparent: string | undefined,
  tracestate: string | undefined,
): string | undefined {
  const parent = parseTraceparent(traceparent);
  if (parent === undefined) return undefined;
  return packTraceContext({
    traceparent: formatTraceparent(parent),
    tracestate: parseTracestate(tracestate),
  });
}

/** One string for a request's record and queue entry: the traceparent, then ` tracestate` if any. */
export function packTraceContext(headers: { traceparent: string; tracestate?: string | undefined }): string {
  return headers.tracestate === undefined || headers.tracestate === ''
    ? headers.traceparent
    : `${headers.traceparent} ${headers.tracestate}`;
}

/** The headers a packed context stands for (a traceparent never holds a space). */
export function unpackTraceContext(packed: string): TraceHeaders {
  const space = packed.indexOf(' ');
  return space < 0
    ? { traceparent: packed }
    : { traceparent: packed.slice(0, space), tracestate: packed.slice(space + 1) };
}

/** The trace id of a packed context (its traceparent's second field), for log lines. */
export function traceIdOf(packed: string): string {
  return packed.slice(3, 35);
}

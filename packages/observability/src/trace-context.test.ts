import { describe, expect, it } from 'vitest';
import {
  formatTraceparent,
  packTraceContext,
  parseTraceparent,
  parseTracestate,
  traceContextOfHeaders,
  traceIdOf,
  unpackTraceContext,
} from './trace-context.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';
const VALID = `00-${TRACE_ID}-${SPAN_ID}-01`;

describe('parseTraceparent', () => {
  it('reads the fields of a version 00 header', () => {
    expect(parseTraceparent(VALID)).toEqual({ traceId: TRACE_ID, spanId: SPAN_ID, flags: 1 });
    expect(parseTraceparent(`00-${TRACE_ID}-${SPAN_ID}-00`)).toEqual({
      traceId: TRACE_ID,
      spanId: SPAN_ID,
      flags: 0,
    });
  });

  it('reads a higher version by its first four fields, with or without more after them', () => {
    expect(parseTraceparent(`cc-${TRACE_ID}-${SPAN_ID}-01`)).toEqual({
      traceId: TRACE_ID,
      spanId: SPAN_ID,
      flags: 1,
    });
    expect(parseTraceparent(`cc-${TRACE_ID}-${SPAN_ID}-09-what-the-future-holds`)).toEqual({
      traceId: TRACE_ID,
      spanId: SPAN_ID,
      flags: 9,
    });
  });

  it.each([
    ['absent', undefined],
    ['empty', ''],
    ['version ff', `ff-${TRACE_ID}-${SPAN_ID}-01`],
    ['a version that is not hex', `0g-${TRACE_ID}-${SPAN_ID}-01`],
    ['version 00 with a field after the flags', `${VALID}-extra`],
    ['a higher version whose extra field is not after a dash', `cc-${TRACE_ID}-${SPAN_ID}-01.extra`],
    ['upper-case hex', `00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${SPAN_ID}-01`],
    ['an all-zero parent id', `00-${TRACE_ID}-${'0'.repeat(16)}-01`],
    ['a short trace id', `00-${TRACE_ID.slice(1)}-${SPAN_ID}-01`],
    ['a parent id that is not hex', `00-${TRACE_ID}-${SPAN_ID.slice(1)}z-01`],
    ['flags that are not hex', `00-${TRACE_ID}-${SPAN_ID}-0x`],
    ['wrong separators', `00_${TRACE_ID}_${SPAN_ID}_01`],
    ['two headers joined by a comma', `${VALID}, ${VALID}`],
  ])('ignores a header that is %s', (_why, header) => {
    expect(parseTraceparent(header)).toBeUndefined();
  });
});

describe('formatTraceparent', () => {
  it('writes version 00 and keeps only the sampled flag', () => {
    expect(formatTraceparent({ traceId: TRACE_ID, spanId: SPAN_ID, flags: 1 })).toBe(VALID);
    expect(formatTraceparent({ traceId: TRACE_ID, spanId: SPAN_ID, flags: 0xfe })).toBe(
      `00-${TRACE_ID}-${SPAN_ID}-00`,
    );
    expect(formatTraceparent({ traceId: TRACE_ID, spanId: SPAN_ID, flags: 0x09 })).toBe(VALID);
  });

  it('round-trips every valid version 00 header', () => {
    expect(formatTraceparent(parseTraceparent(VALID)!)).toBe(VALID);
  });
});

describe('parseTracestate', () => {
  it('keeps valid members, joined by commas, and drops empty ones', () => {
    expect(parseTracestate('rojo=00f067aa0ba902b7 ,, congo=t61rcWkgMzE')).toBe(
      'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE',
    );
    expect(parseTracestate('tenant1@vendor=a b')).toBe('tenant1@vendor=a b');
    // 512 characters is the most kept.
    const longest = `a=${'x'.repeat(254)},b=${'y'.repeat(253)}`;
    expect(longest).toHaveLength(512);
    expect(parseTracestate(longest)).toBe(longest);
  });

  it.each([
    ['absent', undefined],
    ['only separators', ' , '],
    ['a member without =', 'rojo'],
    ['an upper-case key', 'Rojo=1'],
    ['a value holding =', 'rojo=a=b'],
    ['a value holding a control character', 'rojo=a\u0001b'],
    ['an empty value', 'rojo='],
    ['a repeated key', 'rojo=1,rojo=2'],
    ['more than 32 members', Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(',')],
    ['longer than 512 characters', `a=${'x'.repeat(255)},b=${'y'.repeat(255)}`],
  ])('drops a tracestate that is %s', (_why, header) => {
    expect(parseTracestate(header)).toBeUndefined();
  });
});

describe('traceContextOfHeaders', () => {
  it('packs a valid traceparent with its tracestate', () => {
    expect(traceContextOfHeaders(VALID, 'rojo=1')).toBe(`${VALID} rojo=1`);
    expect(traceContextOfHeaders(VALID, undefined)).toBe(VALID);
  });

  it('normalises a higher version to version 00', () => {
    expect(traceContextOfHeaders(`cc-${TRACE_ID}-${SPAN_ID}-01-more`, undefined)).toBe(VALID);
  });

  it('ignores the tracestate of an invalid traceparent, and an invalid tracestate alone', () => {
    expect(traceContextOfHeaders('00-nope', 'rojo=1')).toBeUndefined();
    expect(traceContextOfHeaders(VALID, 'Bad Key=1')).toBe(VALID);
  });
});

describe('packed contexts', () => {
  it('unpack to the headers they were packed from', () => {
    expect(unpackTraceContext(packTraceContext({ traceparent: VALID, tracestate: 'a=1, b=2' }))).toEqual({
      traceparent: VALID,
      tracestate: 'a=1, b=2',
    });
    expect(unpackTraceContext(packTraceContext({ traceparent: VALID }))).toEqual({ traceparent: VALID });
  });

  it('give their trace id', () => {
    expect(traceIdOf(`${VALID} rojo=1`)).toBe(TRACE_ID);
  });
});

import { expect, test } from 'vitest';
import { contentTypeOf, formatFromContentType, negotiateResponseFormat } from './content-type.ts';

test('formatFromContentType ignores parameters and case', () => {
  expect(formatFromContentType('application/json')).toBe('json');
  expect(formatFromContentType('Application/JSON; charset=utf-8')).toBe('json');
  expect(formatFromContentType('application/msgpack')).toBe('msgpack');
  expect(formatFromContentType(' application/x-msgpack ;foo=bar')).toBe('msgpack');
  expect(formatFromContentType('application/vnd.msgpack')).toBe('msgpack');
  expect(formatFromContentType('text/plain')).toBeUndefined();
  expect(formatFromContentType('application/jsonx')).toBeUndefined();
  expect(formatFromContentType('')).toBeUndefined();
  expect(formatFromContentType(undefined)).toBeUndefined();
});

test('contentTypeOf', () => {
  expect(contentTypeOf('json')).toBe('application/json');
  expect(contentTypeOf('msgpack')).toBe('application/msgpack');
});

test.each([
  [undefined, 'json', 'json'],
  [undefined, 'msgpack', 'msgpack'],
  ['', 'msgpack', 'msgpack'],
  ['*/*', 'msgpack', 'msgpack'],
  ['application/*', 'json', 'json'],
  ['application/msgpack', 'json', 'msgpack'],
  ['application/x-msgpack', 'json', 'msgpack'],
  ['APPLICATION/JSON', 'msgpack', 'json'],
  ['application/json, application/msgpack', 'msgpack', 'msgpack'],
  ['application/json, application/msgpack', 'json', 'json'],
  ['application/json;q=0.5, application/msgpack', 'json', 'msgpack'],
  ['application/json, application/msgpack;q=0.9', 'msgpack', 'json'],
  ['application/msgpack;q=0, */*', 'msgpack', 'json'],
  ['application/json;q=0.2, */*;q=0.1', 'msgpack', 'json'],
  ['text/html', 'msgpack', 'msgpack'],
  ['text/event-stream', 'json', 'json'],
] as const)('Accept %j with a %s request answers %s', (accept, requestFormat, expected) => {
  expect(negotiateResponseFormat(accept, requestFormat)).toBe(expected);
});

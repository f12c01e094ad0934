import { expect, test } from 'vitest';
import { isRequestId, newRequestId, REQUEST_ID_LENGTH } from './request-id.ts';

test('request ids are 22 base64url characters carrying 128 random bits', () => {
  const ids = Array.from({ length: 2000 }, () => newRequestId());
  for (const id of ids) {
    expect(id).toHaveLength(REQUEST_ID_LENGTH);
    expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(Buffer.from(id, 'base64url')).toHaveLength(16);
    expect(isRequestId(id)).toBe(true);
  }
  expect(new Set(ids).size).toBe(ids.length);
});

test('isRequestId accepts only the canonical spelling of 16 bytes', () => {
  expect(isRequestId(Buffer.alloc(16, 0xff).toString('base64url'))).toBe(true);
  expect(isRequestId('A'.repeat(22))).toBe(true);
  expect(isRequestId('A'.repeat(21))).toBe(false);
  expect(isRequestId('A'.repeat(23))).toBe(false);
  expect(isRequestId(`${'A'.repeat(21)}B`)).toBe(false); // sets bits beyond the 128th
  expect(isRequestId(`${'A'.repeat(21)}=`)).toBe(false);
  expect(isRequestId(`${'+'.repeat(21)}A`)).toBe(false); // base64, not base64url
  expect(isRequestId(42)).toBe(false);
});

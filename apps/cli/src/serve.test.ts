import { describe, expect, it } from 'vitest';
import { localHostFor } from './serve.ts';

describe('localHostFor', () => {
  it('reaches a wildcard bind on loopback and brackets IPv6 literals', () => {
    expect(localHostFor('0.0.0.0')).toBe('127.0.0.1');
    expect(localHostFor('::')).toBe('127.0.0.1');
    expect(localHostFor('')).toBe('127.0.0.1');
    expect(localHostFor('10.1.2.3')).toBe('10.1.2.3');
    expect(localHostFor('::1')).toBe('[::1]');
    expect(localHostFor('localhost')).toBe('localhost');
  });
});

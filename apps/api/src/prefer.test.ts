import { describe, expect, it } from 'vitest';
import { preferredWaitSeconds } from './server.ts';

describe('preferredWaitSeconds', () => {
  it.each([
    [undefined, 0],
    ['', 0],
    ['wait=10', 10],
    ['respond-async, wait=5', 5],
    ['wait=7; foo=bar', 7],
    ['WAIT = "3"', 3],
    ['handling=lenient', 0],
    ['wait=abc', 0],
    ['nowait=9', 0],
  ])('reads %j as %d', (header, seconds) => {
    expect(preferredWaitSeconds(header)).toBe(seconds);
  });
});

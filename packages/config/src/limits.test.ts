import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.ts';

/** The one-line message loadConfigOrExit would print (without its `inferq: ` prefix). */
function messageOf(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error: unknown) {
    return (error as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('admission limits', () => {
  it('MAX_QUEUE_DEPTH: 10,000 by default, 0 turns the limit off, anything else negative or fractional is refused', () => {
    expect(loadConfig({}).limits.maxQueueDepth).toBe(10_000);
    expect(loadConfig({ MAX_QUEUE_DEPTH: '0' }).limits.maxQueueDepth).toBe(0);
    expect(loadConfig({ MAX_QUEUE_DEPTH: '2' }).limits.maxQueueDepth).toBe(2);
    expect(messageOf({ MAX_QUEUE_DEPTH: '1.5' })).toBe(
      'invalid configuration: MAX_QUEUE_DEPTH: expected an integer from 0 to 100000000 (got "1.5")',
    );
  });

  it('RATE_LIMIT_PER_SECOND: off (0) by default, accepts decimals, refuses what is not a plain number', () => {
    expect(loadConfig({}).limits.rateLimitPerSecond).toBe(0);
    expect(loadConfig({ RATE_LIMIT_PER_SECOND: '0.5' }).limits.rateLimitPerSecond).toBe(0.5);
    expect(loadConfig({ RATE_LIMIT_PER_SECOND: '200' }).limits.rateLimitPerSecond).toBe(200);
    expect(messageOf({ RATE_LIMIT_PER_SECOND: '-2' })).toBe(
      'invalid configuration: RATE_LIMIT_PER_SECOND: expected a number from 0 to 1000000 (got "-2")',
    );
    expect(messageOf({ RATE_LIMIT_PER_SECOND: '2000000' })).toBe(
      'invalid configuration: RATE_LIMIT_PER_SECOND: expected a number from 0 to 1000000 (got "2000000")',
    );
  });

  it('RATE_LIMIT_BURST: one second of the rate (at least 1) unless set, a positive integer when set', () => {
    expect(loadConfig({ RATE_LIMIT_PER_SECOND: '0.5' }).limits.rateLimitBurst).toBe(1);
    expect(loadConfig({ RATE_LIMIT_PER_SECOND: '12.2' }).limits.rateLimitBurst).toBe(13);
    expect(loadConfig({ RATE_LIMIT_PER_SECOND: '10', RATE_LIMIT_BURST: '50' }).limits.rateLimitBurst).toBe(
      50,
    );
    expect(messageOf({ RATE_LIMIT_BURST: '0' })).toBe(
      'invalid configuration: RATE_LIMIT_BURST: expected an integer from 1 to 100000000 (got "0")',
    );
  });

  it('IDEMPOTENCY_TTL_SECONDS: 24 hours by default, from 1 s to a year', () => {
    expect(loadConfig({}).limits.idempotencyTtlSeconds).toBe(86_400);
    expect(loadConfig({ IDEMPOTENCY_TTL_SECONDS: '30' }).limits.idempotencyTtlSeconds).toBe(30);
    expect(messageOf({ IDEMPOTENCY_TTL_SECONDS: String(366 * 86400) })).toBe(
      'invalid configuration: IDEMPOTENCY_TTL_SECONDS: expected an integer from 1 to 31536000 (got "31622400")',
    );
  });
});

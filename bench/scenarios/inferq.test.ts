import { packStandard } from '@inferq/protocol';
import { describe, expect, it } from 'vitest';
import { acceptedIds } from './inferq.ts';

const answer = (status: number, value: object) => ({ status, body: Buffer.from(packStandard(value)) });

describe('acceptedIds', () => {
  it('takes the id of a single submit and every id of a bulk answer', () => {
    expect(acceptedIds(answer(202, { id: 'a', status: 'queued' }), 1)).toEqual({ ids: ['a'] });
    expect(acceptedIds(answer(202, { ids: ['a', 'b', 'c'] }), 3)).toEqual({ ids: ['a', 'b', 'c'] });
  });

  it('keeps the accepted ids of a bulk body accepted in part, and says why each other one was refused', () => {
    const partly = answer(202, {
      ids: ['a', null, 'c', null],
      rejected: [
        { index: 1, status: 429, title: 'Too Many Requests', detail: 'queue full', retryAfterSeconds: 1 },
        { index: 3, status: 429, title: 'Too Many Requests' },
      ],
    });
    expect(acceptedIds(partly, 4)).toEqual({
      ids: ['a', 'c'],
      refused: ['HTTP 429 in a bulk answer: queue full', 'HTTP 429 in a bulk answer: Too Many Requests'],
    });
  });

  it('refuses an answer that does not account for every request of the body', () => {
    expect(acceptedIds(answer(202, { ids: ['a'] }), 2)).toEqual({ error: 'HTTP 202 without 2 ids' });
    expect(acceptedIds(answer(202, { ids: ['a', 7] }), 2)).toEqual({ error: 'HTTP 202 without 2 ids' });
    expect(acceptedIds(answer(200, {}), 1)).toEqual({ error: 'HTTP 200 without an id' });
  });
});

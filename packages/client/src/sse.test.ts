import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { readServerSentEvents, type ServerSentEvent, SseParser } from './sse.ts';

function parseAll(chunks: string[]): ServerSentEvent[] {
  const parser = new SseParser();
  return chunks.flatMap((chunk) => parser.push(chunk));
}

describe('SseParser', () => {
  it('parses named events with JSON data and ids', () => {
    const stream =
      'event: running\nid: 1\ndata: {"status":"running"}\n\nevent: succeeded\nid: 2\ndata: {"status":"succeeded"}\n\n';
    expect(parseAll([stream])).toEqual([
      { event: 'running', data: '{"status":"running"}', id: '1' },
      { event: 'succeeded', data: '{"status":"succeeded"}', id: '2' },
    ]);
  });

  it('names an event without an event field "message" and joins data lines with newlines', () => {
    expect(parseAll(['data: first\ndata: second\n\n'])).toEqual([
      { event: 'message', data: 'first\nsecond', id: undefined },
    ]);
  });

  it('skips comments, unknown fields and retry, and strips exactly one space after the colon', () => {
    expect(parseAll([': keep-alive\nretry: 1000\nfoo: bar\ndata:  two spaces\ndata:none\n\n'])).toEqual([
      { event: 'message', data: ' two spaces\nnone', id: undefined },
    ]);
  });

  it('treats a field name without a colon as a field with an empty value', () => {
    expect(parseAll(['data\ndata\n\n'])).toEqual([{ event: 'message', data: '\n', id: undefined }]);
  });

  it('does not dispatch a block without data, and its event type does not leak into the next event', () => {
    expect(parseAll(['event: lonely\n\ndata: x\n\n'])).toEqual([
      { event: 'message', data: 'x', id: undefined },
    ]);
  });

  it('keeps the last event id for later events and ignores ids containing NUL', () => {
    expect(parseAll(['id: 7\ndata: a\n\ndata: b\n\nid: 8\0\ndata: c\n\nid\ndata: d\n\n'])).toEqual([
      { event: 'message', data: 'a', id: '7' },
      { event: 'message', data: 'b', id: '7' },
      { event: 'message', data: 'c', id: '7' },
      { event: 'message', data: 'd', id: '' },
    ]);
  });

  it('accepts CRLF, CR and LF line endings, also when a CRLF is split between chunks', () => {
    expect(parseAll(['data: a\r\n\r\ndata: b\r\rdata: c\r', '\n\r', '\n'])).toEqual([
      { event: 'message', data: 'a', id: undefined },
      { event: 'message', data: 'b', id: undefined },
      { event: 'message', data: 'c', id: undefined },
    ]);
  });

  it('strips a byte order mark at the start of the stream only', () => {
    expect(parseAll(['\uFEFFdata: a\n\n', '\uFEFFdata: b\n\n'])).toEqual([
      { event: 'message', data: 'a', id: undefined },
    ]);
  });

  it('holds an unterminated event back, and end() discards it', () => {
    const parser = new SseParser();
    expect(parser.push('data: partial\n')).toEqual([]);
    parser.end();
    expect(parser.push('data: next\n\n')).toEqual([{ event: 'message', data: 'next', id: undefined }]);
  });

  it('gives the same events however the stream is cut into chunks', () => {
    const stream =
      '\uFEFFevent: running\r\nid: 1\r\ndata: {"a":1}\r\n\r\n: ping\n\nevent: succeeded\rdata: line1\rdata: line2\r\r';
    const whole = parseAll([stream]);
    expect(whole).toEqual([
      { event: 'running', data: '{"a":1}', id: '1' },
      { event: 'succeeded', data: 'line1\nline2', id: '1' },
    ]);
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 12 }),
        (cuts) => {
          const sorted = [...cuts].sort((a, b) => a - b);
          const chunks = [0, ...sorted].map((from, i) => stream.slice(from, sorted[i] ?? stream.length));
          expect(parseAll(chunks)).toEqual(whole);
        },
      ),
    );
  });
});

describe('readServerSentEvents', () => {
  it('decodes UTF-8 split inside a character and yields events from a byte stream', async () => {
    const bytes = new TextEncoder().encode(
      'event: done\ndata: {"label":"数字"}\n\ndata: tail-without-blank-line\n',
    );
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        // Cut inside the three-byte encoding of the first CJK character.
        const cut = bytes.indexOf(0xe6) + 1;
        controller.enqueue(bytes.subarray(0, cut));
        controller.enqueue(bytes.subarray(cut));
        controller.close();
      },
    });
    const events: ServerSentEvent[] = [];
    for await (const event of readServerSentEvents(body)) events.push(event);
    expect(events).toEqual([{ event: 'done', data: '{"label":"数字"}', id: undefined }]);
  });
});

import { describe, expect, it } from 'vitest';
import { LineSplitter, OutputTail } from './output-tail.ts';

describe('LineSplitter', () => {
  it('emits whole lines across chunk boundaries, drops CR of CRLF, and flushes the rest at the end', () => {
    const lines: string[] = [];
    const splitter = new LineSplitter((line) => lines.push(line));
    splitter.write('{"msg":"a"}\n{"ms');
    splitter.write('g":"b"}\r\n\npartial');
    expect(lines).toEqual(['{"msg":"a"}', '{"msg":"b"}', '']);
    splitter.end();
    expect(lines).toEqual(['{"msg":"a"}', '{"msg":"b"}', '', 'partial']);
  });
});

describe('OutputTail', () => {
  it('keeps only the last lines', () => {
    const tail = new OutputTail(2);
    for (const line of ['one', 'two', 'three']) tail.push(line);
    expect(tail.text()).toBe('two\nthree');
  });
});

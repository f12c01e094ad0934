import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  countNdjson,
  folderInput,
  imageRequestBody,
  inputName,
  listFolder,
  ndjsonInput,
  readFolder,
  readNdjson,
} from './inputs.ts';

const BODY = '{"inputs":{"x":{"dtype":"float32","shape":[1,2],"data":[1,2]}}}';
// sha256 of BODY's UTF-8 bytes (printf '%s' "$BODY" | sha256sum).
const BODY_SHA256 = '29f00883ec74f5a5701d49bb951895cee5c67b00f1c0d87427cc22f7b860218d';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'inferq-bulk-inputs-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

describe('ndjsonInput', () => {
  it('decodes a JSON infer body and names it by its line and content hash', () => {
    const input = ndjsonInput(BODY, 3);
    expect(input.ref).toEqual({ line: 3 });
    expect(input.bytes).toBe(Buffer.byteLength(BODY));
    expect(input.sha256).toBe(BODY_SHA256);
    expect(input.sha256).toBe(ndjsonInput(BODY, 9).sha256);
    expect(input.invalid).toBeUndefined();
    expect(input.body?.inputs.x).toEqual({ dtype: 'float32', shape: [1, 2], data: new Float32Array([1, 2]) });
  });

  it('keeps a line that is no infer body, with the reason, and no body', () => {
    const notJson = ndjsonInput('not json', 1);
    expect(notJson.body).toBeUndefined();
    expect(notJson.invalid).toMatch(/^body is not valid JSON: /);
    expect(ndjsonInput('{"input":{}}', 2).invalid).toBe('body has no "inputs"');
  });
});

describe('readNdjson', () => {
  it('yields one input per non-blank line, numbered as the file is (CRLF and a byte-order mark are not content)', async () => {
    const path = join(dir, 'requests.ndjson');
    writeFileSync(path, `\uFEFF${BODY}\r\n\n   \nnot json\n${BODY}`);
    const inputs = await collect(readNdjson(path));
    expect(inputs.map((input) => [input.ref, input.invalid === undefined])).toEqual([
      [{ line: 1 }, true],
      [{ line: 4 }, false],
      [{ line: 5 }, true],
    ]);
    expect(inputs[0]?.sha256).toBe(inputs[2]?.sha256);
    expect(await countNdjson(path)).toBe(3);
  });
});

describe('listFolder', () => {
  it('lists *.json and image files of the folder and its subfolders in path order, nothing hidden or else', () => {
    mkdirSync(join(dir, 'b'));
    mkdirSync(join(dir, '.hidden'));
    for (const file of [
      'z.json',
      'a.PNG',
      'b/c.jpg',
      'b/d.webp',
      'b/e.jpeg',
      'notes.txt',
      '.x.json',
      '.hidden/y.json',
    ])
      writeFileSync(join(dir, file), '');
    expect(listFolder(dir)).toEqual([
      { file: 'a.PNG', kind: 'image' },
      { file: 'b/c.jpg', kind: 'image' },
      { file: 'b/d.webp', kind: 'image' },
      { file: 'b/e.jpeg', kind: 'image' },
      { file: 'z.json', kind: 'json' },
    ]);
  });
});

describe('folderInput and readFolder', () => {
  it("sends an image's bytes as the model's bytes input, and a *.json file as the body it holds", async () => {
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
    writeFileSync(join(dir, 'scan.png'), png);
    writeFileSync(join(dir, 'req.json'), BODY);
    const inputs = await collect(readFolder(dir, listFolder(dir), 'image'));
    expect(inputs.map((input) => input.ref)).toEqual([{ file: 'req.json' }, { file: 'scan.png' }]);
    expect(inputs[0]?.sha256).toBe(ndjsonInput(BODY, 1).sha256);
    expect(inputs[1]?.body).toEqual(imageRequestBody(png, 'image'));
    expect(inputs[1]?.body?.inputs.image).toEqual({ dtype: 'uint8', shape: [7], data: png });
    expect(inputs[1]?.bytes).toBe(7);
  });

  it('marks an image invalid for a model without a bytes input', () => {
    const input = folderInput({ file: 'a.png', kind: 'image' }, new Uint8Array([1]), undefined);
    expect(input.body).toBeUndefined();
    expect(input).toMatchObject({ ref: { file: 'a.png' }, invalid: 'the model takes no image input' });
  });
});

describe('inputName', () => {
  it('names lines and files', () => {
    expect(inputName({ line: 12 })).toBe('line 12');
    expect(inputName({ file: 'scans/a.png' })).toBe('file scans/a.png');
  });
});

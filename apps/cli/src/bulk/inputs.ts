/**
 * What `inferq submit --bulk` reads: an NDJSON file (one JSON infer body a line) or a folder (one
 * JSON infer body a `*.json` file, and image files sent as the model's one bytes input). Each input
 * is named by where it sits (its line number, or its path inside the folder) and its content's
 * SHA-256: together, its identity in the results file and in the chunks' idempotency keys.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { createInterface } from 'node:readline';
import { decodeInferRequest, type InferRequestBody } from '@inferq/protocol';

/** Where an input sits: a line of the NDJSON file (1-based) or a file of the folder (relative, `/`). */
export type InputRef = { line: number } | { file: string };

export interface BulkInput {
  ref: InputRef;
  /** Hex SHA-256 of the input's bytes (the line without its line break, or the file). */
  sha256: string;
  /** Its size in bytes, for sizing chunks. */
  bytes: number;
  /** The infer body; absent when the input cannot be read as one (`invalid` says why). */
  body?: InferRequestBody;
  invalid?: string;
}

/** The file extensions of a folder that are sent as images, and of those read as JSON bodies. */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp'] as const;
const JSON_EXTENSION = '.json';

/** How an input is named in messages and keys: `line 3`, `file scans/a.png`. */
export function inputName(ref: InputRef): string {
  return 'line' in ref ? `line ${ref.line}` : `file ${ref.file}`;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function decodeJsonBody(bytes: Uint8Array): Pick<BulkInput, 'body' | 'invalid'> {
  try {
    return { body: decodeInferRequest(bytes, 'json') };
  } catch (error: unknown) {
    return { invalid: error instanceof Error ? error.message : String(error) };
  }
}

/** One line of an NDJSON file as an input (the caller leaves out blank lines). */
export function ndjsonInput(text: string, line: number): BulkInput {
  const bytes = Buffer.from(text, 'utf8');
  return { ref: { line }, sha256: sha256(bytes), bytes: bytes.byteLength, ...decodeJsonBody(bytes) };
}

function isBlank(text: string): boolean {
  return text.trim().length === 0;
}

/** Each line of a file, without its line break (`\n` or `\r\n`) or a leading byte-order mark. */
async function* fileLines(path: string): AsyncGenerator<string> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
  let first = true;
  for await (const text of lines) {
    yield first && text.startsWith('\uFEFF') ? text.slice(1) : text;
    first = false;
  }
}

/** The inputs of an NDJSON file, in order; blank lines are none (but count as lines). */
export async function* readNdjson(path: string): AsyncGenerator<BulkInput> {
  let line = 0;
  for await (const text of fileLines(path)) {
    line += 1;
    if (!isBlank(text)) yield ndjsonInput(text, line);
  }
}

/** How many inputs an NDJSON file holds (its non-blank lines), for the progress bar's total. */
export async function countNdjson(path: string): Promise<number> {
  let count = 0;
  for await (const text of fileLines(path)) if (!isBlank(text)) count += 1;
  return count;
}

export interface FolderEntry {
  /** Path inside the folder, with `/` separators. */
  file: string;
  kind: 'json' | 'image';
}

function kindOf(name: string): FolderEntry['kind'] | undefined {
  const lower = name.toLowerCase();
  if (lower.endsWith(JSON_EXTENSION)) return 'json';
  return IMAGE_EXTENSIONS.some((extension) => lower.endsWith(extension)) ? 'image' : undefined;
}

/**
 * The inputs of a folder and its subfolders: `*.json` files and images, sorted by path (code unit
 * order, so that every run sees them in the same order). Hidden files and folders (a leading `.`)
 * and other files are not inputs.
 */
export function listFolder(root: string): FolderEntry[] {
  const entries: FolderEntry[] = [];
  const visit = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) visit(path);
      else if (entry.isFile()) {
        const kind = kindOf(entry.name);
        if (kind !== undefined) entries.push({ file: relative(root, path).split(sep).join('/'), kind });
      }
    }
  };
  visit(root);
  return entries.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

/** An image's bytes as the body of a model whose one input (`inputName`) is uint8 bytes [-1]. */
export function imageRequestBody(bytes: Uint8Array, inputName: string): InferRequestBody {
  return { inputs: { [inputName]: { dtype: 'uint8', shape: [bytes.byteLength], data: bytes } } };
}

/**
 * One file of a folder as an input. `imageInput` names the model's bytes input; an image without one
 * is invalid (the command checks the model first, so this only guards the pure function).
 */
export function folderInput(
  entry: FolderEntry,
  bytes: Uint8Array,
  imageInput: string | undefined,
): BulkInput {
  const common = { ref: { file: entry.file }, sha256: sha256(bytes), bytes: bytes.byteLength };
  if (entry.kind === 'json') return { ...common, ...decodeJsonBody(bytes) };
  if (imageInput === undefined) return { ...common, invalid: 'the model takes no image input' };
  return { ...common, body: imageRequestBody(bytes, imageInput) };
}

/** The inputs of a folder listed by `listFolder`, read one file at a time. */
export async function* readFolder(
  root: string,
  entries: readonly FolderEntry[],
  imageInput: string | undefined,
): AsyncGenerator<BulkInput> {
  for (const entry of entries) {
    const bytes = new Uint8Array(readFileSync(join(root, entry.file)));
    yield folderInput(entry, bytes, imageInput);
  }
}

/**
 * The results file of `inferq submit --bulk`: NDJSON, one line per input that reached a final
 * state, appended as each one finishes. It is also the run's memory: a later run with the same
 * file skips the inputs it already holds (same place, same content, same model).
 */
import {
  closeSync,
  createReadStream,
  existsSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readSync,
  statSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { type RequestRecord, TERMINAL_STATUSES, tensorDataToList } from '@inferq/protocol';
import { type BulkInput, type InputRef, inputName } from './inputs.ts';

/**
 * A final state: the API's terminal ones, `rejected` (the API refused the input itself: a body that
 * does not fit the model, 4xx) and `invalid` (not an infer body at all, found before sending).
 */
export type ResultStatus = 'succeeded' | 'failed' | 'cancelled' | 'expired' | 'rejected' | 'invalid';

/** One line of the results file. */
export interface ResultLine {
  line?: number;
  file?: string;
  sha256: string;
  model: string;
  /** The version that answered; for `rejected` and `invalid`, the one asked for (null: the default). */
  version: number | null;
  /** The request's id; null when none was made. */
  id: string | null;
  status: ResultStatus;
  cached?: boolean;
  /** Outputs in the API's JSON form (element lists), for `succeeded`. */
  outputs?: Record<string, unknown>;
  error?: { code: string; message: string };
}

const FINAL_STATUSES: ReadonlySet<string> = new Set([...TERMINAL_STATUSES, 'rejected', 'invalid']);

export function isFinalStatus(status: string): status is ResultStatus {
  return FINAL_STATUSES.has(status);
}

/** The results file next to the input: `requests.ndjson` → `requests.results.ndjson`, `scans/` → `scans.results.ndjson`. */
export function defaultResultsPath(source: string): string {
  const trimmed = source.replace(/[/\\]+$/, '') || source;
  const name = basename(trimmed).replace(/\.(ndjson|jsonl)$/i, '');
  return join(dirname(trimmed), `${name}.results.ndjson`);
}

function refFields(ref: InputRef): Pick<ResultLine, 'line' | 'file'> {
  return 'line' in ref ? { line: ref.line } : { file: ref.file };
}

/** The line of an input whose request ended: its outputs (JSON form) or its error. */
export function recordResultLine(
  input: Pick<BulkInput, 'ref' | 'sha256'>,
  record: RequestRecord,
): ResultLine {
  const line: ResultLine = {
    ...refFields(input.ref),
    sha256: input.sha256,
    model: record.model,
    version: record.version,
    id: record.id,
    status: record.status as ResultStatus,
    cached: record.cached,
  };
  if (record.outputs !== undefined) {
    line.outputs = Object.fromEntries(
      Object.entries(record.outputs).map(([name, tensor]) => [
        name,
        { dtype: tensor.dtype, shape: tensor.shape, data: tensorDataToList(tensor) },
      ]),
    );
  }
  if (record.error !== undefined) line.error = { code: record.error.code, message: record.error.message };
  return line;
}

/** The line of an input that never became a request: refused by the API, or not an infer body. */
export function refusedResultLine(
  input: Pick<BulkInput, 'ref' | 'sha256'>,
  target: { model: string; version: number | undefined },
  status: 'rejected' | 'invalid',
  error: { code: string; message: string },
): ResultLine {
  return {
    ...refFields(input.ref),
    sha256: input.sha256,
    model: target.model,
    version: target.version ?? null,
    id: null,
    status,
    error,
  };
}

/** A line of the file, or undefined for one that is not ours (or was cut short by a crash). */
export function parseResultLine(text: string): ResultLine | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const placed = Number.isSafeInteger(v.line) || typeof v.file === 'string';
  if (!placed || typeof v.sha256 !== 'string' || typeof v.model !== 'string') return undefined;
  if (typeof v.status !== 'string' || !isFinalStatus(v.status)) return undefined;
  return value as ResultLine;
}

function resultKey(ref: InputRef, sha256: string): string {
  return `${inputName(ref)}\n${sha256}`;
}

/**
 * What earlier runs finished, for one model (and version, when one is asked for): the final line of
 * each input, found by its place and content hash (an input edited since is not done). The last line
 * of an input wins.
 */
export class FinishedInputs {
  private readonly byInput = new Map<string, ResultLine>();

  constructor(private readonly target: { model: string; version: number | undefined }) {}

  /** Takes one line of the file; lines of other models or versions are ignored. */
  add(line: ResultLine): void {
    if (line.model !== this.target.model) return;
    if (this.target.version !== undefined && line.version !== this.target.version) return;
    const ref: InputRef = line.line !== undefined ? { line: line.line } : { file: line.file as string };
    this.byInput.set(resultKey(ref, line.sha256), line);
  }

  /** The final line an earlier run wrote for this input, if any. */
  get(input: Pick<BulkInput, 'ref' | 'sha256'>): ResultLine | undefined {
    return this.byInput.get(resultKey(input.ref, input.sha256));
  }

  get size(): number {
    return this.byInput.size;
  }
}

/**
 * Cuts a line that a crash left unfinished off the end of the file (everything after its last line
 * break), so that the next line appended starts a line of its own.
 */
function dropPartialLastLine(fd: number): void {
  const size = fstatSync(fd).size;
  const block = Buffer.alloc(64 * 1024);
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - block.byteLength);
    const read = readSync(fd, block, 0, end - start, start);
    const newline = block.subarray(0, read).lastIndexOf(0x0a);
    if (newline >= 0) {
      if (start + newline + 1 < size) ftruncateSync(fd, start + newline + 1);
      return;
    }
    end = start;
  }
  if (size > 0) ftruncateSync(fd, 0);
}

/** The results file, opened for appending after reading what earlier runs left in it. */
export class ResultsFile {
  private constructor(
    private readonly fd: number,
    readonly finished: FinishedInputs,
  ) {}

  static async open(
    path: string,
    target: { model: string; version: number | undefined },
  ): Promise<ResultsFile> {
    const finished = new FinishedInputs(target);
    if (existsSync(path) && statSync(path).size > 0) {
      const repair = openSync(path, 'r+');
      try {
        dropPartialLastLine(repair);
      } finally {
        closeSync(repair);
      }
      const lines = createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
      for await (const text of lines) {
        const line = parseResultLine(text);
        if (line !== undefined) finished.add(line);
      }
    }
    return new ResultsFile(openSync(path, 'a'), finished);
  }

  /** Appends one line in one write: an interrupted run leaves whole lines only. */
  append(line: ResultLine): void {
    const bytes = Buffer.from(`${JSON.stringify(line)}\n`, 'utf8');
    let written = 0;
    while (written < bytes.byteLength) written += writeSync(this.fd, bytes, written);
  }

  close(): void {
    closeSync(this.fd);
  }
}

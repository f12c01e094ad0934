/**
 * `inferq submit <model> --bulk <file.ndjson | folder>`: sends every input through `infer:bulk` in
 * chunks, a few chunks at a time, waits for each request and appends its result to the results file
 * as it finishes; a run that was interrupted resumes from that file (docs: README, "Bulk work").
 */
import { setMaxListeners } from 'node:events';
import { realpathSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { InferqClient, InferqTimeoutError } from '@inferq/client';
import type { RequestRecord, WireFormat } from '@inferq/protocol';
import { defaultBaseUrl } from '../submit.ts';
import { type BulkTarget, chunkIdempotencyKey, planChunks } from './chunks.ts';
import { type BulkInput, countNdjson, inputName, listFolder, readFolder, readNdjson } from './inputs.ts';
import { createProgress } from './progress.ts';
import { classifyBulkError, classifyRejection, retryDelayMs } from './refusals.ts';
import {
  defaultResultsPath,
  type ResultLine,
  ResultsFile,
  recordResultLine,
  refusedResultLine,
} from './results-file.ts';
import { BulkTally, bulkExitCode, bulkSummary, formatSummary } from './summary.ts';

export interface BulkCommandOptions {
  url?: string;
  dataDir?: string;
  apiKey?: string;
  modelVersion?: number;
  format: WireFormat;
  /** Seconds to wait for each request once accepted. */
  timeout: number;
  out?: string;
  /** Chunks in flight at once (each sent, then its requests waited for). */
  concurrency: number;
  chunkSize: number;
  /** Input bytes a chunk holds at most. */
  chunkBytes: number;
  /** Tries of one chunk (or one wait) refused for a passing reason, before the run stops. */
  retries: number;
}

/** Stops the whole run: nothing more this run can do would succeed. */
class BulkStop extends Error {}

/** An input on its way: what an earlier run left for it, if anything. */
interface Member {
  input: BulkInput;
  earlier: ResultLine | undefined;
}

/** The model's one bytes input, which image files are sent as; undefined when it has none. */
function bytesInputOf(
  inputs: readonly { name: string; dtype: string; shape: number[] }[],
): string | undefined {
  const [only, ...others] = inputs;
  if (only === undefined || others.length > 0 || only.dtype !== 'uint8' || only.shape.length !== 1)
    return undefined;
  return only.name;
}

export async function bulkCommand(
  model: string,
  source: string,
  options: BulkCommandOptions,
  io: { stdout: NodeJS.WriteStream; stderr: NodeJS.WriteStream } = {
    stdout: process.stdout,
    stderr: process.stderr,
  },
): Promise<number> {
  let isFolder: boolean;
  try {
    isFolder = statSync(source).isDirectory();
  } catch {
    io.stderr.write(`inferq: ${source}: no such file or folder\n`);
    return 2;
  }
  const out = options.out ?? defaultResultsPath(source);
  // The results file is appended to and its cut-short last line removed: never the input itself.
  if (!isFolder && sameFile(out, source)) {
    io.stderr.write(`inferq: --out ${out} is the input file; name another results file\n`);
    return 2;
  }
  const client = new InferqClient({
    baseUrl: options.url ?? defaultBaseUrl(process.env, options.dataDir),
    apiKey: options.apiKey,
    format: options.format,
  });
  const target: BulkTarget = { model, version: options.modelVersion, format: options.format };

  let total: number;
  let inputs: AsyncIterable<BulkInput>;
  if (isFolder) {
    const entries = listFolder(source);
    let imageInput: string | undefined;
    if (entries.some((entry) => entry.kind === 'image')) {
      const info = await client.model(model);
      imageInput = bytesInputOf(info.inputs);
      if (imageInput === undefined) {
        io.stderr.write(
          `inferq: ${source} holds images, but model '${model}' does not take one: image files need a model or pipeline whose one input is uint8 bytes [-1]\n`,
        );
        return 2;
      }
    }
    total = entries.length;
    inputs = readFolder(source, entries, imageInput);
  } else {
    total = await countNdjson(source);
    inputs = readNdjson(source);
  }

  const results = await ResultsFile.open(out, target);
  const tally = new BulkTally(total);
  const startedAt = Date.now();
  const progress = createProgress(io.stderr, model, tally, startedAt);
  const controller = new AbortController();
  const run = controller.signal;
  let interrupted = false;
  let stopReason: string | undefined;
  let timedOut = 0;
  let signals = 0;
  const onInterrupt = (): void => {
    signals += 1;
    // A second Ctrl-C does not wait for the in-flight calls to unwind; every line written is whole.
    if (signals > 1) process.exit(130);
    interrupted = true;
    progress.note('stopping (SIGINT)');
    controller.abort();
  };
  process.on('SIGINT', onInterrupt);

  const stop = (error: unknown): void => {
    if (run.aborted) return;
    stopReason = error instanceof Error ? error.message : String(error);
    controller.abort();
  };

  const pause = async (
    attempt: number,
    retryAfterSeconds: number | undefined,
    why: string,
    signal: AbortSignal,
  ): Promise<void> => {
    if (attempt > options.retries) throw new BulkStop(`gave up after ${options.retries} tries: ${why}`);
    const delay = retryDelayMs(attempt, retryAfterSeconds);
    progress.note(`${why}; trying again in ${Math.ceil(delay / 1000)}s`);
    await sleep(delay, undefined, { signal }).catch(() => {});
    progress.note('');
  };

  const finish = (line: ResultLine): void => {
    results.append(line);
    tally.finish(line.status);
    progress.update();
  };

  /** Waits for one request; undefined when it did not end in time, its record is gone, or the run stops. */
  const waitForRecord = async (id: string, signal: AbortSignal): Promise<RequestRecord | undefined> => {
    const deadline = Date.now() + options.timeout * 1000;
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await client.waitFor(id, Math.max(0, deadline - Date.now()), signal);
      } catch (error: unknown) {
        if (signal.aborted) return undefined;
        if (error instanceof InferqTimeoutError) {
          timedOut += 1;
          return undefined;
        }
        const refusal = classifyBulkError(error, 0);
        // 404: the record is gone (RESULT_TTL_SECONDS, or Redis lost it); a later run submits again.
        if (refusal.kind !== 'transient') return undefined;
        await pause(attempt, refusal.retryAfterSeconds, refusal.message, signal);
      }
    }
  };

  /**
   * Sends one chunk until each of its unfinished members has a request (or is rejected), always
   * whole and under the key of its members, then waits for those requests and writes each result
   * as it comes.
   */
  const runChunk = async (chunk: readonly Member[]): Promise<void> => {
    // Its calls listen to a signal of its own: every fetch adds an abort listener, which undici
    // drops only once the request is garbage, so they would pile up on the run's signal. This one
    // goes with the chunk, whatever its size (a listener per request and long poll).
    const chunkController = new AbortController();
    setMaxListeners(0, chunkController.signal);
    const abortChunk = (): void => chunkController.abort();
    run.addEventListener('abort', abortChunk, { once: true });
    try {
      await sendAndWait(chunk, chunkController.signal);
    } finally {
      run.removeEventListener('abort', abortChunk);
    }
  };

  const sendAndWait = async (chunk: readonly Member[], signal: AbortSignal): Promise<void> => {
    const rejectedNow = new Set<Member>();
    const ids = new Map<Member, string>();
    const inBody = () => chunk.filter((m) => m.earlier?.status !== 'rejected' && !rejectedNow.has(m));
    let attempt = 0;
    for (;;) {
      const body = inBody();
      const waiting = body.filter((m) => m.earlier === undefined && !ids.has(m));
      if (waiting.length === 0 || signal.aborted) break;
      let answer: Awaited<ReturnType<InferqClient['submitBulk']>>;
      try {
        answer = await client.submitBulk(
          model,
          body.map((m) => m.input.body!),
          {
            version: options.modelVersion,
            idempotencyKey: chunkIdempotencyKey(
              target,
              body.map((m) => m.input),
            ),
            signal,
          },
        );
      } catch (error: unknown) {
        if (signal.aborted) break;
        const refusal = classifyBulkError(error, body.length);
        if (refusal.kind === 'fatal') throw new BulkStop(refusal.message);
        if (refusal.kind === 'input') {
          const member = body[refusal.index]!;
          rejectedNow.add(member);
          // A member an earlier run finished is left out of the body, and keeps its line.
          if (member.earlier === undefined) {
            finish(
              refusedResultLine(member.input, target, 'rejected', {
                code: refusal.code,
                message: refusal.message,
              }),
            );
          }
          continue;
        }
        attempt += 1;
        await pause(attempt, refusal.retryAfterSeconds, refusal.message, signal);
        continue;
      }
      const before = ids.size;
      answer.ids.forEach((id, index) => {
        const member = body[index];
        if (id !== null && member !== undefined && member.earlier === undefined) ids.set(member, id);
      });
      if (waiting.every((m) => ids.has(m))) break;
      // Admission control refused some for now: the same body again, under the same key, replays
      // the accepted ones and offers the others once more.
      const refusals = (answer.rejected ?? [])
        .filter((entry) => waiting.includes(body[entry.index]!))
        .map(classifyRejection);
      const fatal = refusals.find((refusal) => refusal.kind === 'fatal');
      if (fatal !== undefined) throw new BulkStop(fatal.message);
      attempt = ids.size > before ? 1 : attempt + 1;
      const retryAfter = Math.max(
        0,
        ...refusals.map((refusal) => (refusal.kind === 'transient' ? (refusal.retryAfterSeconds ?? 0) : 0)),
      );
      await pause(attempt, retryAfter, refusals[0]?.message ?? 'some requests were refused', signal);
    }
    // Every request of the chunk is waited for at once (a long poll each), and written as it ends.
    await Promise.all(
      [...ids].map(async ([member, id]) => {
        const record = await waitForRecord(id, signal);
        if (record !== undefined && !signal.aborted) finish(recordResultLine(member.input, record));
      }),
    );
  };

  /** The inputs that go into chunks, with what an earlier run left for them; counts the rest. */
  async function* members(): AsyncGenerator<Member & { bytes: number }> {
    for await (const input of inputs) {
      const earlier = results.finished.get(input);
      if (earlier !== undefined) tally.skip(earlier.status);
      if (input.body === undefined || earlier?.status === 'invalid') {
        if (earlier === undefined) {
          finish(
            refusedResultLine(input, target, 'invalid', {
              code: 'invalid-input',
              message: `${inputName(input.ref)}: ${input.invalid}`,
            }),
          );
        }
        progress.update();
        continue;
      }
      progress.update();
      yield { input, earlier, bytes: input.bytes };
    }
  }

  const running = new Set<Promise<void>>();
  try {
    for await (const chunk of planChunks(members(), {
      maxRequests: options.chunkSize,
      maxBytes: options.chunkBytes,
    })) {
      if (run.aborted) break;
      if (chunk.every((m) => m.earlier !== undefined)) continue;
      while (running.size >= options.concurrency) await Promise.race(running);
      if (run.aborted) break;
      const task: Promise<void> = runChunk(chunk)
        .catch(stop)
        .finally(() => running.delete(task));
      running.add(task);
    }
  } catch (error: unknown) {
    stop(error);
  }
  await Promise.all(running);
  process.off('SIGINT', onInterrupt);
  progress.stop();
  results.close();

  const summary = bulkSummary(tally, Date.now() - startedAt, {
    out,
    interrupted,
    ...(stopReason === undefined || interrupted ? {} : { error: stopReason }),
  });
  if (timedOut > 0) {
    io.stderr.write(
      `inferq: ${timedOut} requests had not finished after --timeout ${options.timeout} s (they keep running; a later run picks them up)\n`,
    );
  }
  if (summary.error !== undefined) io.stderr.write(`inferq: ${summary.error}\n`);
  io.stderr.write(`inferq: ${formatSummary(summary)}\n`);
  io.stdout.write(`${JSON.stringify(summary)}\n`);
  return bulkExitCode(summary);
}

/** `a` and `b` name the same existing file (through links and relative paths alike). */
function sameFile(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

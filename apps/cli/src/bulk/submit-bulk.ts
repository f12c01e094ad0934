/** `inferq submit --bulk`: the options of `inferq submit` that apply to a bulk run, checked. */
import type { SubmitCommandOptions } from '../submit.ts';
import { bulkCommand } from './bulk-command.ts';

export interface BulkOptions {
  bulk?: string;
  out?: string;
  concurrency: number;
  chunkSize: number;
  chunkBytes: number;
  retries: number;
}

/** A bulk run waits for every result and writes them to a file: --json, --zeros and --no-wait do not apply. */
export async function bulkSubmit(
  model: string,
  source: string,
  options: SubmitCommandOptions & BulkOptions,
): Promise<number> {
  const conflicting = [
    options.json !== undefined ? '--json' : undefined,
    options.zeros === true ? '--zeros' : undefined,
    options.wait === false ? '--no-wait' : undefined,
  ].filter((name) => name !== undefined);
  if (conflicting.length > 0) {
    process.stderr.write(`inferq: --bulk does not go with ${conflicting.join(', ')}\n`);
    return 2;
  }
  return bulkCommand(model, source, {
    url: options.url,
    dataDir: options.dataDir,
    apiKey: options.apiKey,
    modelVersion: options.modelVersion,
    format: options.format,
    timeout: options.timeout ?? 600,
    out: options.out,
    concurrency: options.concurrency,
    chunkSize: options.chunkSize,
    chunkBytes: options.chunkBytes,
    retries: options.retries,
  });
}

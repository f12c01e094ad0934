import { readFileSync } from 'node:fs';
import { InferqClient } from '@inferq/client';
import {
  decodeInferRequest,
  encodeRecord,
  type InferRequestBody,
  type RequestRecord,
  type WireFormat,
} from '@inferq/protocol';
import { readServeState } from './serve-state.ts';
import { zeroInputs } from './zero-inputs.ts';

export interface SubmitCommandOptions {
  json?: string;
  zeros?: boolean;
  dim: number;
  url?: string;
  /** serve's data folder, where its API URL is found when neither --url nor INFERQ_URL is given. */
  dataDir?: string;
  apiKey?: string;
  modelVersion?: number;
  /** Seconds; 60 when absent. */
  timeout?: number;
  wait: boolean;
  format: WireFormat;
}

/**
 * The API to talk to without --url: INFERQ_URL, else the API of the `inferq serve` running from
 * `dataDir` (its state file), else http://127.0.0.1:$PORT (8080).
 */
export function defaultBaseUrl(env: NodeJS.ProcessEnv = process.env, dataDir?: string): string {
  return (
    env.INFERQ_URL ?? readServeState(dataDir)?.apiUrl ?? `http://127.0.0.1:${env.PORT?.trim() || '8080'}`
  );
}

/**
 * `inferq submit <model>`: sends one request (a JSON body from a file, or zeros shaped after the
 * model's signature), waits for it, and prints the record as JSON on stdout. Exit code 0 only when
 * the request succeeded.
 */
export async function submitCommand(model: string, options: SubmitCommandOptions): Promise<number> {
  if ((options.json === undefined) === (options.zeros !== true)) {
    process.stderr.write('inferq: give exactly one of --json <file> and --zeros\n');
    return 2;
  }
  const baseUrl = options.url ?? defaultBaseUrl(process.env, options.dataDir);
  const client = new InferqClient({ baseUrl, apiKey: options.apiKey, format: options.format });

  let body: InferRequestBody;
  if (options.json !== undefined) {
    const bytes = readFileSync(options.json === '-' ? 0 : options.json);
    body = decodeInferRequest(bytes, 'json');
  } else {
    const info = await client.model(model);
    if (!Array.isArray(info.inputs))
      throw new Error(`GET /v1/models/${model} did not list the model's inputs`);
    body = { inputs: zeroInputs(info.inputs, options.dim) };
  }

  const submitOptions = { version: options.modelVersion };
  if (!options.wait) {
    const { record, ...accepted } = await client.submit(model, body, submitOptions);
    printLine(record === undefined ? JSON.stringify(accepted) : recordJson(record));
    return 0;
  }
  const record = await client.infer(model, body, {
    ...submitOptions,
    timeoutMs: (options.timeout ?? 60) * 1000,
  });
  printLine(recordJson(record));
  return record.status === 'succeeded' ? 0 : 1;
}

/** The record exactly as the API's JSON form writes it (tensor data as element lists). */
function recordJson(record: RequestRecord): string {
  return new TextDecoder().decode(encodeRecord(record, 'json'));
}

function printLine(text: string): void {
  process.stdout.write(`${text}\n`);
}

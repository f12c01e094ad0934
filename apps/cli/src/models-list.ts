import { InferqClient } from '@inferq/client';
import type { ModelDescription } from '@inferq/protocol';
import { defaultBaseUrl } from './submit.ts';

export interface ModelsListOptions {
  url?: string;
  dataDir?: string;
  apiKey?: string;
  json?: boolean;
}

/** One row per version on disk: what `inferq models` prints. */
export interface ModelRow {
  model: string;
  version: number;
  state: string;
  default: boolean;
  liveWorkers: number;
  reason: string;
}

export function modelRows(models: readonly ModelDescription[]): ModelRow[] {
  return models.flatMap((model) =>
    model.versionStates.map((version) => ({
      model: model.name,
      version: version.version,
      state: version.state,
      default: version.version === model.defaultVersion,
      liveWorkers: version.liveWorkers,
      reason: version.reason ?? '',
    })),
  );
}

/** Columns padded to their widest cell; the reason last, unpadded. */
export function formatModelRows(rows: readonly ModelRow[]): string {
  const header = ['MODEL', 'VERSION', 'STATE', 'WORKERS', 'REASON'];
  const cells = rows.map((row) => [
    row.model,
    `${row.version}${row.default ? ' (default)' : ''}`,
    row.state,
    String(row.liveWorkers),
    row.reason,
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...cells.map((line) => line[column]!.length)),
  );
  return [header, ...cells]
    .map((line) =>
      line
        .map((cell, column) => (column === line.length - 1 ? cell : cell.padEnd(widths[column]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/**
 * `inferq models`: the deployment's models and pipelines, each version with its state, its live
 * workers and, when it cannot take requests, why (GET /v1/models of the API --url names, else
 * $INFERQ_URL, else the running `inferq serve`'s).
 */
export async function modelsListCommand(options: ModelsListOptions, env = process.env): Promise<number> {
  const client = new InferqClient({
    baseUrl: options.url ?? defaultBaseUrl(env, options.dataDir),
    ...(options.apiKey === undefined ? {} : { apiKey: options.apiKey }),
    format: 'json',
  });
  const rows = modelRows(await client.models());
  process.stdout.write(`${options.json === true ? JSON.stringify(rows) : formatModelRows(rows)}\n`);
  return 0;
}

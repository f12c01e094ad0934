import { Argument, Command, InvalidArgumentError, Option } from 'commander';
import cliPackage from '../package.json' with { type: 'json' };
import { type BulkOptions, bulkSubmit } from './bulk/submit-bulk.ts';
import { modelsReloadCommand } from './models.ts';
import { type ModelsListOptions, modelsListCommand } from './models-list.ts';
import { type QueueAction, queueCommand } from './queue.ts';
import { serve } from './serve.ts';
import { type SubmitCommandOptions, submitCommand } from './submit.ts';

function positiveInteger(value: string): number {
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 1)
    throw new InvalidArgumentError('expected a positive integer');
  return parsed;
}

/** fetch reports "fetch failed" and hides the reason (refused, DNS...) in `cause`. */
function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? ` (${error.cause.message})` : '';
  return `${error.message}${cause}`;
}

/** A reader that closes our stdout early (`| head`) is not a failure of ours. */
function onBrokenStdout(handle: () => void): void {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    handle();
  });
}

const DATA_DIR_HELP =
  'the data folder of the `inferq serve` whose Redis (when REDIS_URL is unset) and API to use (default: <repo>/.data/redis)';

const program = new Command()
  .name('inferq')
  .description('Queue-backed asynchronous inference: run the service, or send it requests.')
  .version(cliPackage.version)
  .showHelpAfterError();

program
  .command('serve')
  .description(
    'Run everything on this machine: a private redis-server (unless REDIS_URL is set), the API on PORT ' +
      '(default 8080) and one worker. Prints "inferq ready: <url>" once /readyz answers 200; SIGINT/SIGTERM ' +
      'drain and stop everything. Reads the environment described in the README ("Configuration").',
  )
  .option('--data-dir <dir>', "folder for the private Redis's append-only file (default: <repo>/.data/redis)")
  .action(async (options: { dataDir?: string }) => {
    // Losing the log reader must not leave the children running without their supervisor.
    onBrokenStdout(() => {});
    // Exit explicitly: idle keep-alive sockets of the readiness checks must not hold the process.
    process.exit(await serve(options));
  });

program
  .command('submit')
  .description(
    'Submit one request, wait for it and print its record as JSON (exit code 0 when it succeeded). ' +
      'With --bulk, submit every request of an NDJSON file or a folder through infer:bulk, write each ' +
      'result to --out as it finishes, resume an interrupted run from that file, and print a summary ' +
      '(exit code 0 when every input succeeded; README, "Bulk work").',
  )
  .argument('<model>', 'model name')
  .option(
    '--json <file>',
    'request body in the JSON wire format ({ "inputs": { name: tensor } }); - for stdin',
  )
  .option('--zeros', "all-zero inputs shaped after the model's signature")
  .option(
    '--bulk <path>',
    'many requests: an NDJSON file (one JSON request body a line), or a folder of *.json request bodies ' +
      "and images (.png .jpg .jpeg .webp, sent as the model's one uint8 bytes input)",
  )
  .option('--out <file>', 'with --bulk: the results file (default: <input>.results.ndjson beside the input)')
  .option('--concurrency <n>', 'with --bulk: chunks in flight at once', positiveInteger, 4)
  .option(
    '--chunk-size <n>',
    "with --bulk: requests per infer:bulk call, at most the API's MAX_BULK_REQUESTS",
    positiveInteger,
    64,
  )
  .option(
    '--chunk-bytes <n>',
    "with --bulk: input bytes per infer:bulk call, below the API's MAX_BODY_BYTES",
    positiveInteger,
    8 * 1024 * 1024,
  )
  .option(
    '--retries <n>',
    'with --bulk: tries of a call the API refuses for now (429, 503, unreachable) before the run stops',
    positiveInteger,
    20,
  )
  .option(
    '--dim <n>',
    'with --zeros: size of dynamic dimensions other than the batch axis',
    positiveInteger,
    32,
  )
  .option(
    '--url <url>',
    'API base URL (default: $INFERQ_URL, else the API of the `inferq serve` running from --data-dir, else http://127.0.0.1:$PORT)',
  )
  .option('--data-dir <dir>', DATA_DIR_HELP)
  // No default shown in --help: it would print the key.
  .option('--api-key <key>', 'API key (default: $INFERQ_API_KEY)')
  .option('--model-version <n>', 'model version (default: the highest)', positiveInteger)
  .option(
    '--timeout <seconds>',
    'how long to wait for the result (default: 60; with --bulk, for each request: 600)',
    positiveInteger,
  )
  .option('--no-wait', 'print the accepted request (its id) without waiting for the result')
  .addOption(
    new Option('--format <format>', 'wire format of the request')
      .choices(['msgpack', 'json'])
      .default('msgpack'),
  )
  .action(async (model: string, options: SubmitCommandOptions & BulkOptions) => {
    onBrokenStdout(() => process.exit(process.exitCode ?? 0));
    try {
      const apiKey = options.apiKey ?? process.env.INFERQ_API_KEY;
      process.exitCode =
        options.bulk === undefined
          ? await submitCommand(model, { ...options, apiKey })
          : await bulkSubmit(model, options.bulk, { ...options, apiKey });
    } catch (error: unknown) {
      process.stderr.write(`inferq: ${describeError(error)}\n`);
      process.exitCode = 1;
    }
  });

program
  .command('queue')
  .description(
    "Show, pause or resume one model version's queue (REDIS_URL, else the running `inferq serve`'s Redis; QUEUE_PREFIX). The model must be in MODEL_REPOSITORY or served by a live worker. A paused queue holds " +
      'new requests in Redis (workers finish what they took); resume enqueues them in arrival order. ' +
      'Prints the state as JSON.',
  )
  .addArgument(new Argument('<action>', 'what to do').choices(['status', 'pause', 'resume']))
  .argument('<model>', 'model name')
  .option(
    '--model-version <n>',
    'model version (default: the highest with a queue in Redis)',
    positiveInteger,
  )
  .option('--data-dir <dir>', DATA_DIR_HELP)
  .action(
    async (action: QueueAction, model: string, options: { modelVersion?: number; dataDir?: string }) => {
      try {
        process.exitCode = await queueCommand(action, model, options);
      } catch (error: unknown) {
        process.stderr.write(`inferq: ${describeError(error)}\n`);
        process.exitCode = 1;
      }
    },
  );

const models = program
  .command('models')
  .description(
    "The models of a running deployment: list them (the default), or have the repository read again (REDIS_URL, else the running `inferq serve`'s Redis; QUEUE_PREFIX).",
  );
models
  .command('list', { isDefault: true })
  .description(
    "List the models and pipelines with each version's state, live workers and, when it cannot take requests, why (the default of `inferq models`).",
  )
  .option(
    '--url <url>',
    'API base URL (default: $INFERQ_URL, else the API of the `inferq serve` running from --data-dir, else http://127.0.0.1:$PORT)',
  )
  .option('--data-dir <dir>', DATA_DIR_HELP)
  .option('--api-key <key>', 'API key (default: $INFERQ_API_KEY)')
  .option('--json', 'print the rows as JSON')
  .action(async (options: ModelsListOptions) => {
    try {
      process.exitCode = await modelsListCommand({
        ...options,
        apiKey: options.apiKey ?? process.env.INFERQ_API_KEY,
      });
    } catch (error: unknown) {
      process.stderr.write(`inferq: ${describeError(error)}\n`);
      process.exitCode = 1;
    }
  });
models
  .command('reload')
  .description(
    'Ask every API and worker to read MODEL_REPOSITORY again now (they also poll it every ' +
      'REPOSITORY_POLL_SECONDS, and reload on SIGHUP). Prints how many processes heard it.',
  )
  .option('--data-dir <dir>', DATA_DIR_HELP)
  .action(async (options: { dataDir?: string }) => {
    try {
      process.exitCode = await modelsReloadCommand(options);
    } catch (error: unknown) {
      process.stderr.write(`inferq: ${describeError(error)}\n`);
      process.exitCode = 1;
    }
  });

await program.parseAsync(process.argv);

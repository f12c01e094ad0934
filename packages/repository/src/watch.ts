import { loadModelRepository, type ModelRepository } from './repository.ts';

/** The little of a pino logger the watch needs. */
export interface WatchLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface RepositoryWatchOptions {
  dir: string;
  /** Models to read (MODELS); undefined: all. */
  only?: readonly string[] | undefined;
  /** Seconds between reads (REPOSITORY_POLL_SECONDS); 0: only on demand. */
  pollSeconds: number;
  logger: WatchLogger;
  /** Called with each read (awaited: reads never overlap, and the next waits for it). */
  onRead(repository: ModelRepository): Promise<void> | void;
}

/**
 * Reads the model repository at start, then again every `pollSeconds` and whenever `readNow` is
 * called (SIGHUP, `inferq models reload`). Unchanged versions are not read again (their files'
 * fingerprints say so). A read that fails keeps the last good one and is logged; only the first
 * read's failure (the folder is missing) is thrown, for the process to stop on.
 */
export class RepositoryWatch {
  private readonly options: RepositoryWatchOptions;
  private current: ModelRepository | undefined;
  private reading: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private reportedProblems = new Set<string>();

  constructor(options: RepositoryWatchOptions) {
    this.options = options;
  }

  /** The last repository read. */
  get repository(): ModelRepository | undefined {
    return this.current;
  }

  async start(): Promise<ModelRepository> {
    await this.read();
    if (this.options.pollSeconds > 0) {
      this.timer = setInterval(() => void this.readNow(), this.options.pollSeconds * 1000);
      this.timer.unref();
    }
    return this.current!;
  }

  /** Reads the repository again, after any read under way; resolves once `onRead` has run. */
  readNow(reason?: string): Promise<void> {
    if (reason !== undefined) this.options.logger.info({ reason }, 'reading the model repository again');
    const next = this.reading.then(() =>
      this.read().catch((error: unknown) =>
        this.options.logger.warn(
          { err: error },
          'reading the model repository failed; keeping the last read',
        ),
      ),
    );
    this.reading = next;
    return next;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async read(): Promise<void> {
    const { dir, only, logger } = this.options;
    const repository = await loadModelRepository(dir, only, this.current);
    this.current = repository;
    const problems = new Set(repository.problems);
    for (const problem of problems) {
      if (!this.reportedProblems.has(problem)) logger.warn({ problem }, 'model repository entry skipped');
    }
    this.reportedProblems = problems;
    await this.options.onRead(repository);
  }
}

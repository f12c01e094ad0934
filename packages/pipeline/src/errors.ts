/** What a pipeline's run rejects with (executor.ts), besides the caller's abort reason. */

/** A step's call failed (or returned something unusable); `item` is the item of a per-item step. */
export class PipelineStepError extends Error {
  override readonly name = 'PipelineStepError';
  override readonly cause: unknown;

  constructor(
    readonly step: string,
    cause: unknown,
    description: string,
    readonly item?: number,
  ) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super(`step '${step}' (${description}) failed: ${detail}`, { cause });
    this.cause = cause;
  }
}

/** The request's inputs do not match the pipeline's, or a pipeline output is not what it declares. */
export class PipelineTensorError extends Error {
  override readonly name = 'PipelineTensorError';

  constructor(
    readonly role: 'input' | 'output',
    readonly tensor: string,
    message: string,
  ) {
    super(message);
  }
}

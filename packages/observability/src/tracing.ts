/**
 * OpenTelemetry spans for a request's path (docs/observability.md, "Tracing and request logs"):
 * `inferq.accept` in the API, `inferq.queue_wait` and `inferq.inference` (or `inferq.pipeline`) in
 * the worker, each in the request's own trace, and one `inferq.batch` per batch, a root span linked
 * to the context of every request it ran. Exported over OTLP/HTTP (JSON) when an endpoint is
 * configured (packages/config `tracing`); otherwise `startTracing` answers undefined and callers skip
 * every span: the SDK is never loaded (its modules are imported dynamically, here only) and the hot
 * path allocates nothing for tracing.
 */

import type { TracingConfig } from '@inferq/config';
import type {
  Attributes,
  Context,
  DiagLogger,
  Link,
  Span,
  SpanContext,
  SpanStatus,
  Tracer,
} from '@opentelemetry/api';
import type { Logger } from 'pino';
import {
  formatTraceparent,
  packTraceContext,
  parseTraceparent,
  unpackTraceContext,
} from './trace-context.ts';

/** A request as the worker's spans need it. */
export interface TracedRequest {
  id: string;
  /** When it was accepted (ms since epoch): its queue wait starts there. */
  createdAt: number;
  /** Its packed W3C context (trace-context.ts), when it carries one. */
  trace?: string;
}

/** The API's span over one submission (one request, or one `infer:bulk` body). */
export interface AcceptSpan {
  /**
   * The context each accepted request carries on (record, queue, worker, webhook): this span's own,
   * with the caller's tracestate.
   */
  readonly trace: string;
  /** Says what became of a request: its id, its model version and the submit outcome. */
  accepted(request: AcceptedRequest): void;
  /** Says how many requests an `infer:bulk` body held (their ids are on their own spans and logs). */
  acceptedMany(requests: number): void;
  /** Ends the span; with `error`, the submission was refused or failed. */
  end(error?: unknown): void;
}

export interface AcceptedRequest {
  id: string;
  version: number;
  /** The submit script's outcome: queued, cached, coalesced, replayed. */
  outcome: string;
  /** A coalesced request's leader's packed context: linked, since the leader's run is its run. */
  leaderTrace?: string;
}

/** A worker's spans for one batch: the batch span, and each request's queue wait and inference. */
export interface BatchSpan {
  /** The model ran for `requests` from `startMs` to `endMs` (ms since epoch). */
  inference(requests: readonly TracedRequest[], startMs: number, endMs: number): void;
  /** A run of (part of) the batch failed. */
  failed(error: Error, requests: number): void;
  end(): void;
}

/** A pipeline request's spans: its queue wait, and its run, whose context its model steps carry. */
export interface PipelineSpan {
  /** The packed context of the run: a model step's request is a child of it. */
  readonly trace: string;
  end(error?: RequestFailure): void;
}

/** How a request failed, for a span's status. */
export interface RequestFailure {
  code: string;
  message: string;
}

export interface Tracing {
  /** Starts the API's span for a submission, the child of `incoming` (a packed context) if given. */
  startAccept(incoming: string | undefined, model: string): AcceptSpan;
  /**
   * Starts a batch that the worker began at `startedAt`: ends each request's queue wait there and
   * opens the batch span, linked to every request's context.
   */
  startBatch(
    model: string,
    version: number,
    requests: readonly TracedRequest[],
    startedAt: number,
  ): BatchSpan;
  /** Starts a pipeline request's run at `startedAt` (its queue wait ends there). */
  startPipeline(pipeline: string, version: number, request: TracedRequest, startedAt: number): PipelineSpan;
  /** Exports what is left and stops. */
  shutdown(): Promise<void>;
}

/** Attribute names of inferq's spans. */
export const TRACE_ATTRIBUTES = {
  requestId: 'inferq.request.id',
  model: 'inferq.model',
  version: 'inferq.model.version',
  outcome: 'inferq.outcome',
  batchSize: 'inferq.batch.size',
  bulk: 'inferq.bulk.requests',
  errorType: 'error.type',
} as const;

/**
 * Tracing for this process when `config` names an OTLP endpoint, else undefined (tracing off).
 * `defaultServiceName` names the process when OTEL_SERVICE_NAME is not set.
 */
export async function startTracing(
  config: TracingConfig | undefined,
  defaultServiceName: string,
  logger: Logger,
): Promise<Tracing | undefined> {
  if (config === undefined) return undefined;
  const [api, sdk, exporter, resources, conventions] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/semantic-conventions'),
  ]);
  // Export failures (collector down) reach the log, not stderr.
  api.diag.setLogger(diagLogger(logger), api.DiagLogLevel.WARN);
  const serviceName = config.serviceName ?? defaultServiceName;
  const provider = new sdk.TracerProvider({
    resource: resources.resourceFromAttributes({ [conventions.ATTR_SERVICE_NAME]: serviceName }),
    spanProcessors: [
      new sdk.BatchSpanProcessor({
        exporter: new exporter.OTLPTraceExporter({ url: config.tracesUrl }),
        scheduledDelayMillis: config.exportDelayMs,
      }),
    ],
  });
  logger.info({ tracesUrl: config.tracesUrl, serviceName }, 'tracing on: spans go to the OTLP endpoint');
  return new OtelTracing(api, provider.getTracer('inferq'), () => provider.shutdown());
}

type Api = typeof import('@opentelemetry/api');

class OtelTracing implements Tracing {
  private readonly api: Api;
  private readonly tracer: Tracer;
  private readonly stop: () => Promise<void>;

  constructor(api: Api, tracer: Tracer, stop: () => Promise<void>) {
    this.api = api;
    this.tracer = tracer;
    this.stop = stop;
  }

  startAccept(incoming: string | undefined, model: string): AcceptSpan {
    const { api } = this;
    const span = this.tracer.startSpan(
      'inferq.accept',
      { kind: api.SpanKind.SERVER, attributes: { [TRACE_ATTRIBUTES.model]: model } },
      (incoming === undefined ? undefined : this.contextOf(incoming)) ?? api.ROOT_CONTEXT,
    );
    const trace = this.pack(span.spanContext());
    return {
      trace,
      accepted: (request) => {
        span.setAttributes({
          [TRACE_ATTRIBUTES.requestId]: request.id,
          [TRACE_ATTRIBUTES.version]: request.version,
          [TRACE_ATTRIBUTES.outcome]: request.outcome,
        });
        const leader =
          request.leaderTrace === undefined ? undefined : this.spanContextOf(request.leaderTrace);
        if (leader !== undefined) span.addLink({ context: leader });
      },
      acceptedMany: (requests) => {
        span.setAttribute(TRACE_ATTRIBUTES.bulk, requests);
      },
      end: (error) => {
        if (error !== undefined) {
          const failure = failureOf(error);
          span.setAttribute(TRACE_ATTRIBUTES.errorType, failure.type);
          // A client's mistake (4xx) is not the server's error (OpenTelemetry's HTTP conventions).
          if (failure.serverError)
            span.setStatus({ code: api.SpanStatusCode.ERROR, message: failure.message });
        }
        span.end();
      },
    };
  }

  startBatch(
    model: string,
    version: number,
    requests: readonly TracedRequest[],
    startedAt: number,
  ): BatchSpan {
    const { api } = this;
    const contexts = new Map<TracedRequest, Context>();
    const links: Link[] = [];
    let sampled = false;
    for (const request of requests) {
      if (request.trace === undefined) continue;
      const parent = this.contextOf(request.trace);
      if (parent === undefined) continue;
      contexts.set(request, parent);
      const linked = api.trace.getSpanContext(parent) as SpanContext;
      if ((linked.traceFlags & api.TraceFlags.SAMPLED) !== 0) sampled = true;
      links.push({ context: linked, attributes: { [TRACE_ATTRIBUTES.requestId]: request.id } });
      this.endedSpan('inferq.queue_wait', parent, request.createdAt, startedAt, {
        [TRACE_ATTRIBUTES.requestId]: request.id,
      });
    }
    const attributes: Attributes = {
      [TRACE_ATTRIBUTES.model]: model,
      [TRACE_ATTRIBUTES.version]: version,
      [TRACE_ATTRIBUTES.batchSize]: requests.length,
    };
    // A batch of requests whose traces are all unsampled is not recorded either; one with no traced
    // request at all (its API traces nothing) is a trace of its own.
    const batch =
      sampled || contexts.size === 0
        ? this.tracer.startSpan(
            'inferq.batch',
            { root: true, kind: api.SpanKind.CONSUMER, attributes, links, startTime: startedAt },
            api.ROOT_CONTEXT,
          )
        : undefined;
    const batchLink = batch === undefined ? undefined : [{ context: batch.spanContext() }];
    return {
      inference: (ran, startMs, endMs) => {
        for (const request of ran) {
          const parent = contexts.get(request);
          if (parent === undefined) continue;
          this.endedSpan(
            'inferq.inference',
            parent,
            startMs,
            endMs,
            {
              ...attributes,
              [TRACE_ATTRIBUTES.requestId]: request.id,
              [TRACE_ATTRIBUTES.batchSize]: ran.length,
            },
            batchLink,
          );
        }
      },
      failed: (error, size) => {
        batch?.addEvent('inference failed', {
          'exception.message': error.message,
          [TRACE_ATTRIBUTES.batchSize]: size,
        });
      },
      end: () => batch?.end(),
    };
  }

  startPipeline(pipeline: string, version: number, request: TracedRequest, startedAt: number): PipelineSpan {
    const parent = request.trace === undefined ? undefined : this.contextOf(request.trace);
    const attributes: Attributes = {
      [TRACE_ATTRIBUTES.model]: pipeline,
      [TRACE_ATTRIBUTES.version]: version,
      [TRACE_ATTRIBUTES.requestId]: request.id,
    };
    if (parent !== undefined)
      this.endedSpan('inferq.queue_wait', parent, request.createdAt, startedAt, attributes);
    const span = this.tracer.startSpan(
      'inferq.pipeline',
      { kind: this.api.SpanKind.CONSUMER, attributes, startTime: startedAt },
      parent ?? this.api.ROOT_CONTEXT,
    );
    return {
      trace: this.pack(span.spanContext()),
      end: (failure) => {
        if (failure !== undefined) {
          span.setAttribute(TRACE_ATTRIBUTES.errorType, failure.code);
          span.setStatus(this.errorStatus(failure.message));
        }
        span.end();
      },
    };
  }

  shutdown(): Promise<void> {
    return this.stop();
  }

  /** A span from `startMs` to `endMs` (never before its start: hosts' clocks may disagree). */
  private endedSpan(
    name: string,
    parent: Context,
    startMs: number,
    endMs: number,
    attributes: Attributes,
    links?: Link[],
  ): void {
    const span: Span = this.tracer.startSpan(
      name,
      { attributes, startTime: startMs, ...(links === undefined ? {} : { links }) },
      parent,
    );
    span.end(Math.max(startMs, endMs));
  }

  private errorStatus(message: string): SpanStatus {
    return { code: this.api.SpanStatusCode.ERROR, message };
  }

  /** A context whose span is the remote one a packed context names; undefined if it is invalid. */
  private contextOf(packed: string): Context | undefined {
    const spanContext = this.spanContextOf(packed);
    return spanContext === undefined
      ? undefined
      : this.api.trace.setSpanContext(this.api.ROOT_CONTEXT, spanContext);
  }

  private spanContextOf(packed: string): SpanContext | undefined {
    const { traceparent, tracestate } = unpackTraceContext(packed);
    const parent = parseTraceparent(traceparent);
    if (parent === undefined) return undefined;
    return {
      traceId: parent.traceId,
      spanId: parent.spanId,
      traceFlags: parent.flags & this.api.TraceFlags.SAMPLED,
      isRemote: true,
      ...(tracestate === undefined ? {} : { traceState: this.api.createTraceState(tracestate) }),
    };
  }

  private pack(context: SpanContext): string {
    return packTraceContext({
      traceparent: formatTraceparent({
        traceId: context.traceId,
        spanId: context.spanId,
        flags: context.traceFlags,
      }),
      tracestate: context.traceState?.serialize(),
    });
  }
}

/** An error's type (its stable code, else its class) and whether it is the server's fault. */
function failureOf(error: unknown): { type: string; message: string; serverError: boolean } {
  const fields = (typeof error === 'object' && error !== null ? error : {}) as {
    code?: unknown;
    status?: unknown;
    name?: unknown;
    message?: unknown;
  };
  const status = typeof fields.status === 'number' ? fields.status : 500;
  return {
    type:
      typeof fields.code === 'string' ? fields.code : typeof fields.name === 'string' ? fields.name : 'error',
    message: typeof fields.message === 'string' ? fields.message : String(error),
    serverError: status >= 500,
  };
}

/** OpenTelemetry's own warnings and errors (an export that failed) as log lines. */
function diagLogger(logger: Logger): DiagLogger {
  const log =
    (level: 'warn' | 'debug') =>
    (message: string, ...args: unknown[]): void =>
      logger[level]({ details: args.map(String) }, `tracing: ${message}`);
  return {
    error: log('warn'),
    warn: log('warn'),
    info: log('debug'),
    debug: log('debug'),
    verbose: log('debug'),
  };
}

/**
 * The HTTP API's JSON bodies as zod schemas: the source of the OpenAPI document (apps/api's
 * openapi/), and of the integration suite's check of every answer it receives.
 *
 * A request body's envelope is the very schema `decodeInferRequest` validates with (codec.ts); its
 * tensors are checked by hand there (typed arrays and base64 are beyond a schema's reach, and the
 * hand check is the fast path), so `WireTensor` describes what that check accepts, and a unit test
 * holds the two to the same verdicts. Answers are written by our own code: the type checks at the
 * end of this file keep each schema and its TypeScript type equal, so neither can drift alone.
 */
import { z } from 'zod';
import { RequestEnvelope } from './codec.ts';
import type { Problem } from './errors.ts';
import {
  type BatchCostProfile,
  DTYPES,
  type ModelDescription,
  type ModelSignature,
  type ModelVersionStatus,
  REQUEST_STATUSES,
  type RequestError,
  type RequestRecord,
  type StepTiming,
  type TensorSpec,
  type Timings,
} from './types.ts';

export const WireDType = z.enum(DTYPES).meta({ id: 'DType', description: 'Element type of a tensor.' });

const TensorElement = z.union([z.number(), z.string(), z.boolean()]).meta({
  description:
    'An element: a number; for floats also "NaN", "Infinity" or "-Infinity"; for int64 and uint64 also a decimal string; a string for string tensors; true or false (or 0 and 1) for bool.',
});

const Shape = z.array(z.int().min(0)).meta({ description: 'Dimensions, row-major.' });

export const WireTensor = z
  .strictObject({
    dtype: WireDType,
    shape: Shape,
    data: z.union([
      z.array(TensorElement).meta({ description: 'The elements in row-major order.' }),
      z
        .strictObject({ b64: z.string().meta({ description: 'Base64 of the little-endian element bytes.' }) })
        .meta({ description: 'Numeric and bool tensors only (bool: one byte per element, 0 or 1).' }),
    ]),
  })
  .meta({
    id: 'Tensor',
    description:
      'A tensor in JSON. In MessagePack the same map, with `data` a bin of the little-endian element bytes (or an array of elements; string tensors an array of str).',
  });

/** A tensor in an answer: its elements always as a list. */
export const WireOutputTensor = z
  .strictObject({ dtype: WireDType, shape: Shape, data: z.array(TensorElement) })
  .meta({ id: 'OutputTensor', description: 'A tensor in an answer (JSON: its elements as a list).' });

/** `POST …/infer`: the envelope decodeInferRequest validates, with its tensors described. */
export const WireInferRequest = RequestEnvelope.extend({
  inputs: z.record(z.string(), WireTensor).meta({ description: 'Input tensors by name.' }),
}).meta({ id: 'InferRequest', description: 'The body of `POST …/infer`. Only `inputs` is required.' });

/** `POST …/infer:bulk`, at most `maxRequests` requests. */
export function wireBulkInferRequest(maxRequests: number) {
  return z
    .object({ requests: z.array(WireInferRequest).min(1).max(maxRequests) })
    .meta({ id: 'BulkInferRequest', description: `At most ${maxRequests} requests (MAX_BULK_REQUESTS).` });
}

export const WireRequestStatus = z.enum(REQUEST_STATUSES).meta({
  id: 'RequestStatus',
  description: '`succeeded`, `failed`, `cancelled` and `expired` are terminal.',
});

export const WireStepTiming = z
  .strictObject({
    kind: z.enum(['model', 'processor']),
    ms: z.number(),
    items: z.int().optional(),
    queueMs: z.number().optional(),
    batchWaitMs: z.number().optional(),
    inferMs: z.number().optional(),
    batchSizes: z.array(z.int()).optional(),
  })
  .meta({ id: 'StepTiming', description: 'Where one step of a pipeline request spent its time (ms).' });

export const WireTimings = z
  .strictObject({
    queueMs: z.number(),
    batchWaitMs: z.number(),
    inferMs: z.number(),
    totalMs: z.number(),
    steps: z.record(z.string(), WireStepTiming).optional(),
  })
  .meta({ id: 'Timings', description: 'Milliseconds in each phase; `steps` for a pipeline request.' });

export const WireRequestError = z
  .strictObject({ code: z.string(), message: z.string() })
  .meta({ id: 'RequestError', description: 'Why a request failed, e.g. `inference_failed`, `expired`.' });

const Timestamp = z.string().meta({ description: 'ISO 8601, UTC.' });

export const WireRequestRecord = z
  .strictObject({
    id: z.string(),
    model: z.string(),
    version: z.int(),
    status: WireRequestStatus,
    cached: z.boolean(),
    coalesced: z.boolean().optional(),
    createdAt: Timestamp,
    startedAt: Timestamp.optional(),
    finishedAt: Timestamp.optional(),
    timings: WireTimings,
    batchSize: z.int().optional(),
    outputs: z.record(z.string(), WireOutputTensor).optional(),
    error: WireRequestError.optional(),
    metadata: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
  })
  .meta({ id: 'RequestRecord', description: 'A request and, once it ended, its outputs or error.' });

export const WireAccepted = z
  .strictObject({ id: z.string(), status: WireRequestStatus, model: z.string(), version: z.int() })
  .meta({ id: 'Accepted', description: 'A request accepted and not yet finished: poll `Location`.' });

export const WireProblem = z
  .object({
    type: z.string().meta({ description: 'Under https://inferq.dev/problems/.' }),
    title: z.string(),
    status: z.int(),
    detail: z.string(),
  })
  .meta({ id: 'Problem', description: 'RFC 9457 problem details (`application/problem+json`).' });

export const WireBulkAccepted = z
  .strictObject({
    ids: z
      .array(z.string().nullable())
      .meta({ description: 'One per request, in order; null where refused.' }),
    rejected: z
      .array(WireProblem.extend({ index: z.int().min(0), retryAfterSeconds: z.number().optional() }).strict())
      .optional(),
  })
  .meta({
    id: 'BulkAccepted',
    description: 'The ids of a bulk submission, and the requests admission refused.',
  });

export const WireTensorSpec = z
  .strictObject({ name: z.string(), dtype: WireDType, shape: z.array(z.int().min(-1)) })
  .meta({ id: 'TensorSpec', description: 'An input or output of a model; -1 marks a dynamic dimension.' });

export const WireBatchCostProfile = z
  .strictObject({
    batchSizes: z.array(z.strictObject({ batchSize: z.int(), ms: z.number() })),
    overheadMs: z.number(),
    kneeBatchSize: z.int(),
    bestBatchSize: z.int(),
  })
  .meta({
    id: 'BatchCostProfile',
    description: "A model version's cost model, as a live worker measured it.",
  });

export const WireModelVersionStatus = z
  .strictObject({
    version: z.int(),
    state: z.enum(['loading', 'ready', 'unavailable', 'retired']),
    reason: z.string().optional(),
    liveWorkers: z.int().min(0),
    providers: z.array(z.string()),
    accepting: z.boolean(),
    loadMs: z.number().optional(),
    warmupMs: z.number().optional(),
    batchCosts: WireBatchCostProfile.optional(),
  })
  .meta({ id: 'ModelVersionStatus', description: "A model version's state in the fleet." });

export const WireModelDescription = z
  .strictObject({
    name: z.string(),
    versions: z.array(z.int()),
    defaultVersion: z.int(),
    version: z.int(),
    inputs: z.array(WireTensorSpec),
    outputs: z.array(WireTensorSpec),
    batching: z.strictObject({
      maxBatchSize: z.int(),
      maxBatchDelayMs: z.number(),
      preferredBatchSizes: z.array(z.int()),
      latencyObjectiveMs: z.number().nullable(),
    }),
    executionProvider: z.string().nullable(),
    configuredProviders: z.array(z.string()),
    cache: z.strictObject({ enabled: z.boolean(), ttlSeconds: z.number() }),
    ready: z.boolean(),
    versionStates: z.array(WireModelVersionStatus),
  })
  .meta({ id: 'ModelDescription', description: 'A model (or pipeline) and its default version.' });

export const WireModelList = z
  .strictObject({ models: z.array(WireModelDescription) })
  .meta({ id: 'ModelList', description: 'Every model and pipeline served.' });

export const WireHealth = z.strictObject({ status: z.literal('ok') }).meta({ id: 'Health' });

export const WireReadiness = z
  .strictObject({
    status: z.enum(['ready', 'unavailable']),
    ready: z.boolean(),
    redis: z.enum(['ok', 'unreachable', 'refusing-writes']),
    models: z.array(
      z.strictObject({ name: z.string(), version: z.int(), state: z.string(), liveWorkers: z.int().min(0) }),
    ),
    missing: z.array(z.string()).meta({ description: 'Why the deployment is not ready; empty when ready.' }),
    unavailable: z.array(z.strictObject({ name: z.string(), version: z.int(), reason: z.string() })),
  })
  .meta({ id: 'Readiness', description: 'Redis and every default version ready on a live worker.' });

export const WireStatusEvent = z
  .strictObject({ id: z.string(), status: WireRequestStatus })
  .meta({ id: 'StatusEvent', description: 'The data of an `event: status` before the terminal one.' });

/** Every schema with an id: the components of the OpenAPI document (the bulk body takes its cap). */
export const WIRE_SCHEMAS: readonly z.ZodType[] = [
  WireDType,
  WireTensor,
  WireOutputTensor,
  WireInferRequest,
  WireRequestStatus,
  WireStepTiming,
  WireTimings,
  WireRequestError,
  WireRequestRecord,
  WireAccepted,
  WireProblem,
  WireBulkAccepted,
  WireTensorSpec,
  WireBatchCostProfile,
  WireModelVersionStatus,
  WireModelDescription,
  WireModelList,
  WireHealth,
  WireReadiness,
  WireStatusEvent,
];

// Each answer schema equals its TypeScript type: a change to one without the other fails to compile.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
function sameShape<_T extends true>(): void {}
sameShape<Same<z.output<typeof WireTimings>, Timings>>();
sameShape<Same<z.output<typeof WireStepTiming>, StepTiming>>();
sameShape<Same<z.output<typeof WireRequestError>, RequestError>>();
sameShape<Same<z.output<typeof WireProblem>, Problem>>();
sameShape<Same<z.output<typeof WireTensorSpec>, TensorSpec>>();
sameShape<
  Same<
    { inputs: z.output<typeof WireTensorSpec>[]; outputs: z.output<typeof WireTensorSpec>[] },
    ModelSignature
  >
>();
sameShape<Same<z.output<typeof WireBatchCostProfile>, BatchCostProfile>>();
sameShape<Same<z.output<typeof WireModelVersionStatus>, ModelVersionStatus>>();
sameShape<Same<z.output<typeof WireModelDescription>, ModelDescription>>();
sameShape<
  Same<
    Omit<z.output<typeof WireRequestRecord>, 'outputs' | 'metadata'>,
    Omit<RequestRecord, 'outputs' | 'metadata'>
  >
>();

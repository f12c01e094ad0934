export {
  type BulkSubmission,
  InferqClient,
  type InferqClientOptions,
  type ModelInfo,
  type RequestEvent,
  type Submission,
  type SubmitOptions,
} from './client.ts';
export { InferqHttpError, InferqTimeoutError } from './errors.ts';
export { readServerSentEvents, type ServerSentEvent, SseParser } from './sse.ts';
export {
  type CompletionSubscription,
  doneChannel,
  type PubSubConnection,
  subscribeCompletions,
} from './subscribe.ts';
export { encodeBulkInferRequest, encodeInferRequest } from './wire.ts';

export { type CallbackCheckSettings, CallbackUrlCheck } from './callback-check.ts';
export { type AttemptOutcome, type PostWebhookOptions, postWebhook } from './deliver.ts';
export {
  addressRange,
  DestinationGuard,
  type DestinationPolicy,
  DestinationRefusedError,
  type ResolvedAddress,
  type Resolver,
} from './destination.ts';
export {
  type DeliveryOutcome,
  WebhookDispatcher,
  type WebhookDispatcherOptions,
  type WebhookSettings,
} from './dispatcher.ts';
export { type RetrySchedule, retryDelayMs } from './retry.ts';
export { type SignedHeaders, signedHeaders, signWebhook, verifyWebhook } from './signature.ts';

/**
 * The queue backend a suite runs against (vitest.config.ts sets QUEUE_BACKEND per project; the
 * processes the tests start inherit it). No imports: the soak script bundles this file.
 */
export const TEST_QUEUE_BACKEND: 'streams' | 'bullmq' =
  process.env.QUEUE_BACKEND === 'bullmq' ? 'bullmq' : 'streams';

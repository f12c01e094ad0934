export { BatchFormer, type BatchHooks, type BatchPolicy } from './batch-former.ts';
export { type BatchSize, type BatchSizingOptions, batchSize } from './batch-sizing.ts';
export {
  type BatchCosts,
  CostModel,
  type CostPoint,
  estimateBetween,
  KNEE_SHARE,
  type LiveCosts,
  type ShapedCosts,
  warmupBatchSizes,
} from './cost-model.ts';
export { type DeadlineBound, deadlineBound, type ReportedBatchCosts } from './deadline-admission.ts';

export { BatchFormer, type BatchHooks, type BatchPolicy } from './batch-former.ts';

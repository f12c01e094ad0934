// Types of ort-session.mjs (plain JavaScript so that a worker thread can load it without a transform).
import type { InferenceSession } from 'onnxruntime-node';

export interface OrtTensorLike {
  dtype: string;
  shape: number[];
  data: unknown;
}

export interface OrtSessionSettings {
  modelPath: string;
  executionProviders: readonly string[];
  intraOpThreads: number;
  spinThreads: boolean;
}

export function errorMessage(error: unknown): string;
/** onnxruntime's log severity (0 verbose … 4 fatal) for a LOG_LEVEL (default: the environment's). */
export function ortLogSeverity(logLevel?: string): 0 | 1 | 2 | 3 | 4;
export function openOrtSession(
  settings: OrtSessionSettings,
): Promise<{ session: InferenceSession; provider: string }>;
export function runOrtSession(
  session: InferenceSession,
  inputs: Record<string, OrtTensorLike>,
  outputNames?: string[],
): Promise<{ outputs: Record<string, OrtTensorLike>; inferMs: number }>;

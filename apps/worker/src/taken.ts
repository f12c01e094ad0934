import type { TensorMap } from '@inferq/protocol';
import type { Delivery } from '@inferq/store';

/** A request this worker took from its queue and has not given back or ended yet. */
export interface Taken {
  delivery: Delivery;
  /** When this worker took it (ms since epoch). */
  arrivedAt: number;
  /** Another worker reclaimed it (this one stalled past its lease): it must not start here. */
  revoked: boolean;
  /** Requests of one key may share a batch (batchGroupKey), known from the entry, not the payload. */
  groupKey: string;
  /** Rows it adds to a batch. */
  rows: number;
}

/** A started request ready for the model. */
export interface Runnable {
  taken: Taken;
  createdAt: number;
  inputs: TensorMap;
  outputs: string[] | undefined;
  rows: number;
  /**
   * Its batch ran without the start script (a main-thread model): the record is still `queued`,
   * so a path other than the completion script must start it first (failOrRetry does).
   */
  startSkipped: boolean;
}

/** Takes a request out of the worker's hand, whatever became of it. */
export type LetGo = (taken: Taken) => void;

/** `GET /status.json` as a zod schema, for the OpenAPI document; it equals StatusSnapshot's type. */
import { z } from 'zod';
import type { StatusSnapshot } from './status-snapshot.ts';

const nullableNumber = z.number().nullable();

export const WireStatusSnapshot = z
  .strictObject({
    generatedAt: z.string(),
    windowSeconds: z.number(),
    liveWorkers: z.int().min(0),
    models: z.array(
      z.strictObject({
        name: z.string(),
        kind: z.enum(['model', 'pipeline']),
        defaultVersion: z.int().nullable(),
        cache: z.strictObject({ lookups: z.int().min(0), hits: z.int().min(0), hitRatio: nullableNumber }),
        versions: z.array(
          z.strictObject({
            version: z.int(),
            state: z.enum(['loading', 'ready', 'unavailable', 'retired']),
            reason: z.string().optional(),
            liveWorkers: z.int().min(0),
            queueDepth: z.int().min(0).nullable(),
            finished: z.int().min(0),
            failed: z.int().min(0),
            throughput: z.number(),
            latencyMs: z.strictObject({ p50: nullableNumber, p99: nullableNumber }),
            batches: z.strictObject({
              count: z.int().min(0),
              meanSize: nullableNumber,
              largest: nullableNumber,
            }),
          }),
        ),
      }),
    ),
  })
  .meta({
    id: 'StatusSnapshot',
    description: 'The figures of the status page, over the last `windowSeconds`.',
  });

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameShape: Same<z.output<typeof WireStatusSnapshot>, StatusSnapshot> = true;
void sameShape;

import type { ModelDescription } from '@inferq/protocol';
import { describe, expect, it } from 'vitest';
import { formatModelRows, modelRows } from './models-list.ts';

function model(
  name: string,
  defaultVersion: number,
  states: ModelDescription['versionStates'],
): ModelDescription {
  return { name, defaultVersion, versionStates: states } as unknown as ModelDescription;
}

describe('inferq models', () => {
  const models = [
    model('noop', 1, [{ version: 1, state: 'ready', liveWorkers: 1, providers: ['cpu'], accepting: true }]),
    model('ocr', 2, [
      {
        version: 1,
        state: 'retired',
        liveWorkers: 0,
        providers: [],
        accepting: false,
        reason: 'left out by the version policy',
      },
      {
        version: 2,
        state: 'unavailable',
        liveWorkers: 0,
        providers: [],
        accepting: false,
        reason: "its model 'ppocr-det' is unavailable: no live worker serves this version",
      },
    ]),
  ];

  it('has one row per version, marking the default', () => {
    expect(modelRows(models)).toEqual([
      { model: 'noop', version: 1, state: 'ready', default: true, liveWorkers: 1, reason: '' },
      {
        model: 'ocr',
        version: 1,
        state: 'retired',
        default: false,
        liveWorkers: 0,
        reason: 'left out by the version policy',
      },
      {
        model: 'ocr',
        version: 2,
        state: 'unavailable',
        default: true,
        liveWorkers: 0,
        reason: "its model 'ppocr-det' is unavailable: no live worker serves this version",
      },
    ]);
  });

  it('prints them as columns, the reason last', () => {
    expect(formatModelRows(modelRows(models)).split('\n')).toEqual([
      'MODEL  VERSION      STATE        WORKERS  REASON',
      'noop   1 (default)  ready        1',
      'ocr    1            retired      0        left out by the version policy',
      "ocr    2 (default)  unavailable  0        its model 'ppocr-det' is unavailable: no live worker serves this version",
    ]);
  });
});

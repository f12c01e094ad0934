import { describe, expect, it } from 'vitest';
import { errorOfRaw, FILE, LOOKUPS } from './test-support.ts';
import { parsePipelineFile } from './validate.ts';

/** One step running `processor`, declared by the file with `declaration` (a module and its signature). */
function withDeclared(processor: string, declaration: Record<string, unknown>): Record<string, unknown> {
  return {
    processors: { [processor]: declaration },
    inputs: [{ name: 'text', dtype: 'string', shape: [-1] }],
    outputs: [{ name: 'upper', dtype: 'string', shape: [-1], from: 'shout.text' }],
    steps: [{ name: 'shout', processor, inputs: { text: 'text' }, options: { exclaim: true } }],
  };
}

const UPPER = {
  module: 'processors/upper.mjs',
  inputs: [{ name: 'text', dtype: 'string', shape: [-1] }],
  outputs: [{ name: 'text', dtype: 'string', shape: [-1] }],
};

describe("parsePipelineFile: the repository's own processors", () => {
  it("runs a declared processor from its module beside pipeline.json, with the file's signature and any options", () => {
    const spec = parsePipelineFile(withDeclared('text.upper', UPPER), FILE, LOOKUPS);
    expect(spec.steps[0]).toMatchObject({
      kind: 'processor',
      processor: 'text.upper',
      module: '/models/ocr/1/processors/upper.mjs',
      fanOut: false,
      options: { exclaim: true },
      outputs: UPPER.outputs,
    });
  });

  it('refuses a built-in name, a module outside the folder, and a declaration missing its signature', () => {
    expect(errorOfRaw(withDeclared('image.decode', UPPER))).toBe(
      `${FILE}: processors.image.decode: 'image.decode' is a built-in processor's name; choose another`,
    );
    for (const module of ['../shared/upper.mjs', '/etc/upper.mjs', '.']) {
      expect(errorOfRaw(withDeclared('text.upper', { ...UPPER, module }))).toBe(
        `${FILE}: processors.text.upper.module: '${module}' is not inside the pipeline's folder; a processor's module lies beside its pipeline.json`,
      );
    }
    const { outputs: _outputs, ...unsigned } = UPPER;
    expect(errorOfRaw(withDeclared('text.upper', unsigned))).toMatch(
      `${FILE}: processors.text.upper.outputs: `,
    );
  });
});

// The esbuild plugins every bundle of this repository uses (scripts/build-app.mjs, bench/build.mjs).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * Lua scripts and other text assets are imported as `./file.lua?raw` (Vite's convention, which
 * vitest understands natively); in a bundle they become string constants.
 */
export const rawTextImports = {
  name: 'raw-text-imports',
  setup(b) {
    b.onResolve({ filter: /\?raw$/ }, (args) => ({
      path: resolve(args.resolveDir, args.path.slice(0, -'?raw'.length)),
      namespace: 'raw-text',
    }));
    b.onLoad({ filter: /.*/, namespace: 'raw-text' }, (args) => ({
      contents: readFileSync(args.path, 'utf8'),
      loader: 'text',
    }));
  },
};

/** Workspace packages (@inferq/*) are compiled in from source; every npm package stays an external import. */
export const externalNpmPackages = {
  name: 'external-npm-packages',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) =>
      args.path.startsWith('@inferq/') ? undefined : { path: args.path, external: true },
    );
  },
};

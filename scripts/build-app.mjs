// Bundles one app (run from its folder) into dist/: workspace packages (@inferq/*) are compiled in
// from source, every other package stays an external import resolved from node_modules at run time.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { build } from 'esbuild';

const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
const entryPoints = pkg.inferq?.entryPoints ?? ['src/main.ts'];

await build({
  entryPoints,
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: true,
  logLevel: 'warning',
  plugins: [
    {
      // Lua scripts and other text assets are imported as `./file.lua?raw` (Vite's convention, which
      // vitest understands natively); here they become string constants in the bundle.
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
    },
    {
      name: 'external-npm-packages',
      setup(b) {
        b.onResolve({ filter: /^[^./]/ }, (args) =>
          args.path.startsWith('@inferq/') ? undefined : { path: args.path, external: true },
        );
      },
    },
  ],
});

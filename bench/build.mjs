// Bundles the bench (bench/main.ts and the naive baseline's worker) into bench/dist/, as
// scripts/build-app.mjs does for the apps: workspace packages (@inferq/*) are compiled in from
// source, every npm package stays an external import resolved from node_modules at run time.
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { externalNpmPackages, rawTextImports } from '../scripts/esbuild-plugins.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));

await build({
  absWorkingDir: here,
  entryPoints: [
    { in: 'main.ts', out: 'main' },
    { in: 'contenders/naive-worker.ts', out: 'naive-worker' },
  ],
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: true,
  logLevel: 'warning',
  plugins: [rawTextImports, externalNpmPackages],
});

// Bundles one app (run from its folder) into dist/: workspace packages (@inferq/*) are compiled in
// from source, every other package stays an external import resolved from node_modules at run time.
import { readFileSync } from 'node:fs';
import { build } from 'esbuild';
import { externalNpmPackages, rawTextImports } from './esbuild-plugins.mjs';

const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
const entryPoints = pkg.inferq?.entryPoints ?? ['src/main.ts'];

await build({
  entryPoints,
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  // Workspace packages from source, also those that have a build of their own (packages/client).
  conditions: ['development'],
  sourcemap: true,
  logLevel: 'warning',
  plugins: [rawTextImports, externalNpmPackages],
});

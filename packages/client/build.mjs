// Builds the client for plain Node: dist/index.js (ESM; @inferq/protocol compiled in, npm packages
// left as imports) and type declarations (tsconfig.build.json). Inside the repository the apps and
// the tests read the source instead, through the `development` export condition.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { build } from 'esbuild';
import { externalNpmPackages } from '../../scripts/esbuild-plugins.mjs';

const require = createRequire(import.meta.url);
rmSync('dist', { recursive: true, force: true });

await build({
  entryPoints: ['src/index.ts'],
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: true,
  conditions: ['development'],
  logLevel: 'warning',
  plugins: [externalNpmPackages],
});

// Type declarations; their relative imports name the emitted .js files (the sources say .ts).
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
  stdio: 'inherit',
});
for (const name of readdirSync('dist')) {
  if (!name.endsWith('.d.ts')) continue;
  const path = join('dist', name);
  writeFileSync(path, readFileSync(path, 'utf8').replace(/(from '\.\/[\w-]+)\.ts'/g, "$1.js'"));
}

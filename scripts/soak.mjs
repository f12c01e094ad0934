// `npm run soak`: bundles scripts/soak.ts (it shares the fault tests' harness, written in TypeScript)
// into node_modules/.cache and runs it with the command line's arguments. Workspace packages are
// compiled in from source, every other package stays an import resolved from node_modules.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'node_modules', '.cache', 'inferq-soak', 'soak.mjs');

await build({
  entryPoints: [join(root, 'scripts', 'soak.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  logLevel: 'warning',
  plugins: [
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

const run = spawnSync(process.execPath, ['--experimental-websocket', outfile, ...process.argv.slice(2)], {
  stdio: 'inherit',
});
process.exit(run.status ?? 1);

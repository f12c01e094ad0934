#!/usr/bin/env node
// The `inferq` command (npx inferq …, or on PATH after `npm link`): runs the CLI's bundle, which
// `npm ci` builds (the root's prepare script) and `npm run build` rebuilds.
import { existsSync } from 'node:fs';

const bundle = new URL('../dist/main.js', import.meta.url);
if (!existsSync(bundle)) {
  process.stderr.write('inferq: apps/cli/dist/main.js is missing: run `npm run build` in the repository\n');
  process.exit(1);
}
await import(bundle.href);

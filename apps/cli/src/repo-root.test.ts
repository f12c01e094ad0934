import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { findRepoRoot } from './repo-root.ts';

describe('findRepoRoot', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('finds the nearest package.json with workspaces, skipping the app package.json on the way', () => {
    dir = mkdtempSync(join(tmpdir(), 'inferq-root-'));
    mkdirSync(join(dir, 'apps', 'cli', 'dist'), { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'root', workspaces: ['apps/*'] }));
    writeFileSync(join(dir, 'apps', 'cli', 'package.json'), JSON.stringify({ name: '@inferq/cli' }));
    const bundle = pathToFileURL(join(dir, 'apps', 'cli', 'dist', 'main.js')).href;
    expect(findRepoRoot(bundle)).toBe(dir);
  });

  it('finds this repository from this source file', () => {
    expect(findRepoRoot()).toBe(join(import.meta.dirname, '..', '..', '..'));
  });
});

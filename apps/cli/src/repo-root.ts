import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The repository root: the nearest folder above `fromUrl` whose package.json declares workspaces.
 * Walking up (rather than counting `..`) gives the same answer from source (apps/cli/src) and from
 * the bundle (apps/cli/dist).
 */
export function findRepoRoot(fromUrl: string = import.meta.url): string {
  const start = dirname(fileURLToPath(fromUrl));
  for (let dir = start; ; dir = dirname(dir)) {
    if (isWorkspaceRoot(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir)
      throw new Error(`no workspace root (package.json with "workspaces") above ${start}`);
  }
}

function isWorkspaceRoot(manifest: string): boolean {
  if (!existsSync(manifest)) return false;
  try {
    return 'workspaces' in (JSON.parse(readFileSync(manifest, 'utf8')) as object);
  } catch {
    return false;
  }
}

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// Item 17: the HTTP contract lives in the repository (docs/api.md) and nothing points outside it.

const REPO_ROOT = resolve(import.meta.dirname, '..', '..');

function grep(pattern: string): string[] {
  try {
    return execFileSync('git', ['grep', '-n', '-e', pattern, '--', '.', ':!test/e2e/docs.test.ts'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    })
      .split('\n')
      .filter((line) => line !== '');
  } catch {
    return []; // git grep exits 1 when nothing matches
  }
}

describe('the API contract', () => {
  it('is docs/api.md: no file names an API.md of its own or a path outside the repository', () => {
    expect(grep('API\\.md')).toEqual([]);
    expect(grep('/work/')).toEqual([]);
    expect(grep('shared/design')).toEqual([]);
  });

  it("names every route the API's server serves", () => {
    const server = readFileSync(resolve(REPO_ROOT, 'apps/api/src/server.ts'), 'utf8');
    const doc = readFileSync(resolve(REPO_ROOT, 'docs/api.md'), 'utf8');
    const routes = [...server.matchAll(/app\.(get|delete|post)\('([^']+)'/g)].map(
      ([, method, path]) => `${method?.toUpperCase()} ${path?.replace(/:(\w+)/g, '{$1}')}`,
    );
    expect(routes.length).toBeGreaterThan(5);
    for (const route of routes) expect(doc).toContain(route);
    expect(doc).toContain('POST /v1/models/{model}/infer');
    expect(doc).toContain('POST /v1/models/{model}/versions/{v}/infer');
    expect(doc).toContain('infer:bulk');
  });
});

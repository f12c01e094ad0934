/**
 * The live status page (`/status`, docs/api.md "Status page") in Debian's headless Chromium, driven
 * by playwright-core, against the all-in-one serving the demo `noop` model and a model that cannot
 * load: the page shows exactly the requests it was sent (finished, batches, cache lookups and hits),
 * each version's state and the live workers, and shows more traffic by itself, without a reload.
 * The API reference page (`/docs`) is drawn in the same browser, every operation of `/openapi.json` shown.
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Browser, chromium, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AllInOne, startAllInOne } from '../helpers/processes.ts';

const CHROMIUM = '/usr/bin/chromium';
const DEMO = resolve(import.meta.dirname, '..', '..', 'models', 'demo');
/** Figures reach the page within a few flushes and polls (2 s each); this only bounds a failure. */
const SHOWN_WITHIN_MS = 30_000;

let repository: string;
let app: AllInOne;
let browser: Browser;

beforeAll(async () => {
  repository = mkdtempSync(join(tmpdir(), 'inferq-status-'));
  cpSync(join(DEMO, 'noop'), join(repository, 'noop'), { recursive: true });
  mkdirSync(join(repository, 'broken', '1'), { recursive: true });
  writeFileSync(join(repository, 'broken', '1', 'model.onnx'), 'not an onnx model');
  app = await startAllInOne({ env: { MODEL_REPOSITORY: repository, LOG_LEVEL: 'warn' } });
  browser = await chromium.launch({ executablePath: CHROMIUM });
});

afterAll(async () => {
  await browser?.close();
  await app?.stop();
  if (repository !== undefined) rmSync(repository, { recursive: true, force: true });
});

/** One noop request with `x = [n, n, n, n]`, waited for: its record says whether it was a cache hit. */
async function infer(n: number): Promise<{ status: string; cached: boolean }> {
  const response = await fetch(`${app.url}/v1/models/noop/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', prefer: 'wait=30' },
    body: JSON.stringify({ inputs: { x: { dtype: 'float32', shape: [1, 4], data: [n, n, n, n] } } }),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as { status: string; cached: boolean };
}

/** Sends `fresh` inputs never sent before, one at a time, then `repeats` of them again (cache hits). */
async function sendTraffic(fresh: number[], repeats: number[]): Promise<void> {
  for (const n of fresh) expect(await infer(n)).toMatchObject({ status: 'succeeded', cached: false });
  for (const n of repeats) expect(await infer(n)).toMatchObject({ status: 'succeeded', cached: true });
}

function text(locator: Locator): Promise<string | null> {
  return locator.textContent();
}

function noopRow(page: Page): Locator {
  return page.locator('section[data-model="noop"] tr[data-version="1"]');
}

describe('the status page', () => {
  it('shows the traffic it was sent, the model states and the live workers, and refreshes by itself', async () => {
    // Six requests run one at a time (six batches of one), then three of them again from the cache.
    await sendTraffic([1, 2, 3, 4, 5, 6], [1, 2, 3]);

    const page = await browser.newPage();
    const response = await page.goto(`${app.url}/status`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-type']).toBe('text/html; charset=utf-8');
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    // Set on this document: still there after the figures change, so no reload happened.
    await page.evaluate(() => {
      (globalThis as { statusTestMark?: string }).statusTestMark = 'first load';
    });

    const noop = page.locator('section[data-model="noop"]');
    const row = noopRow(page);
    const cell = (name: string) => row.locator(`[data-field="${name}"]`);
    await expect.poll(() => text(cell('finished')), { timeout: SHOWN_WITHIN_MS }).toBe('6');
    await expect
      .poll(() => text(noop.locator('[data-field="cache-counts"]')), { timeout: SHOWN_WITHIN_MS })
      .toBe('(3 of 9 lookups)');
    expect(await text(noop.locator('[data-field="cache-ratio"]'))).toBe('33.3 %');
    expect(await text(cell('failed'))).toBe('0');
    expect(await text(cell('batches'))).toBe('6');
    expect(await text(cell('mean-batch'))).toBe('1.0');
    expect(await text(cell('largest-batch'))).toBe('1');
    expect(await text(cell('queue'))).toBe('0');
    expect(await text(cell('state'))).toBe('ready');
    expect(await text(cell('live-workers'))).toBe('1');
    expect(await text(cell('p50'))).toMatch(/^\d+(\.\d+)? m?s$/);
    expect(await text(cell('p99'))).toMatch(/^\d+(\.\d+)? m?s$/);
    expect(await text(cell('throughput'))).toMatch(/^\d+(\.\d+)?$/);
    expect(await text(page.locator('header [data-field="workers"]'))).toBe('1');
    expect(await text(page.locator('header [data-field="updated"]'))).not.toBe('never');

    // The model that cannot load: unavailable, with the reason, and nothing else to show.
    const broken = page.locator('section[data-model="broken"] tr[data-version="1"]');
    expect(await broken.getAttribute('data-state')).toBe('unavailable');
    expect(await text(broken.locator('[data-field="reason"]'))).not.toBe('');
    expect(await text(broken.locator('[data-field="finished"]'))).toBe('0');
    expect(await text(page.locator('section[data-model="broken"] [data-field="cache-ratio"]'))).toBe(
      'no cache lookups',
    );
    // Every model of /v1/models, in its order, and no other.
    const models = (await (await fetch(`${app.url}/v1/models`)).json()) as { models: { name: string }[] };
    expect(
      await page
        .locator('section[data-model]')
        .evaluateAll((s) => s.map((e) => e.getAttribute('data-model'))),
    ).toEqual(models.models.map((m) => m.name));

    // Four more fresh requests and one more hit: the open page shows them by itself.
    await sendTraffic([7, 8, 9, 10], [7]);
    await expect.poll(() => text(cell('finished')), { timeout: SHOWN_WITHIN_MS }).toBe('10');
    await expect
      .poll(() => text(noop.locator('[data-field="cache-counts"]')), { timeout: SHOWN_WITHIN_MS })
      .toBe('(4 of 14 lookups)');
    expect(await text(noop.locator('[data-field="cache-ratio"]'))).toBe('28.6 %');
    expect(await text(cell('batches'))).toBe('10');
    expect(await page.evaluate(() => (globalThis as { statusTestMark?: string }).statusTestMark)).toBe(
      'first load',
    );
    expect(await text(page.locator('[data-field="connection"]'))).toBe('');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('serves its figures as JSON, and the page with a policy that allows only its own script and style', async () => {
    const response = await fetch(`${app.url}/status.json`);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const snapshot = (await response.json()) as {
      windowSeconds: number;
      liveWorkers: number;
      models: { name: string; versions: { version: number; state: string; finished: number }[] }[];
    };
    expect(snapshot.windowSeconds).toBe(60);
    expect(snapshot.liveWorkers).toBe(1);
    expect(snapshot.models.map((m) => [m.name, m.versions.map((v) => v.state)])).toEqual([
      ['broken', ['unavailable']],
      ['noop', ['ready']],
    ]);

    const page = await fetch(`${app.url}/status`);
    const policy = page.headers.get('content-security-policy') ?? '';
    expect(policy).toMatch(/^default-src 'none'; script-src 'sha256-[A-Za-z0-9+/]+=*'; style-src 'sha256-/);
    expect(policy).toContain("connect-src 'self'");
    expect(await page.text()).not.toMatch(/<script[^>]+src=|<link[^>]+stylesheet/);
  });
});

describe('the API reference at /docs', () => {
  it('renders the OpenAPI document in the browser, every operation listed, with no page error', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    const response = await page.goto(`${app.url}/docs`);
    expect(response?.status()).toBe(200);
    const document = (await (await fetch(`${app.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const operations = Object.entries(document.paths).flatMap(([path, item]) =>
      Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`),
    );
    // Swagger UI draws one block per operation, its method and path as text.
    const shown = page.locator('.opblock-summary');
    await expect.poll(() => shown.count(), { timeout: SHOWN_WITHIN_MS }).toBe(operations.length);
    const drawn = await shown.evaluateAll((blocks) =>
      blocks.map(
        (block) =>
          `${block.querySelector('.opblock-summary-method')?.textContent} ${block.querySelector('.opblock-summary-path')?.getAttribute('data-path')}`,
      ),
    );
    expect(drawn.sort()).toEqual(operations.sort());
    expect(errors).toEqual([]);
    await page.close();
  });
});

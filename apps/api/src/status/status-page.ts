/// <reference path="./raw-imports.d.ts" />
/**
 * The status page: one static HTML file with its script and style inline (no framework, nothing
 * fetched from elsewhere, so it works offline), bundled into dist as a string. Its Content Security
 * Policy allows exactly that script and style, by hash, and requests to this origin only.
 */
import { createHash } from 'node:crypto';
import html from './status-page.html?raw';

export const STATUS_PAGE_HTML = html;

function inlineHash(tag: 'script' | 'style'): string {
  const match = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(html);
  if (match === null) throw new Error(`status-page.html has no <${tag}>`);
  return `'sha256-${createHash('sha256').update(match[1]!, 'utf8').digest('base64')}'`;
}

/** The headers the page is served with. */
export const STATUS_PAGE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'text/html; charset=utf-8',
  'Cache-Control': 'no-cache',
  'Content-Security-Policy': [
    "default-src 'none'",
    `script-src ${inlineHash('script')}`,
    `style-src ${inlineHash('style')}`,
    "connect-src 'self'",
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; '),
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

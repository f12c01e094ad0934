/**
 * `/openapi.json` (the document, built once) and `/docs` (Swagger UI rendering it, served from the
 * swagger-ui-dist package: no CDN, so the page works where the API runs without internet access).
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Config } from '@inferq/config';
import { Router } from 'express';
import { buildOpenApiDocument, DOCS_PATH, OPENAPI_PATH } from './document.ts';

/** The only files of swagger-ui-dist the page loads. */
const UI_ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
};

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>inferq API reference</title>
<link rel="icon" type="image/png" href="${DOCS_PATH}/favicon-32x32.png">
<link rel="stylesheet" href="${DOCS_PATH}/swagger-ui.css">
</head>
<body>
<div id="reference"></div>
<script src="${DOCS_PATH}/swagger-ui-bundle.js"></script>
<script src="${DOCS_PATH}/init.js"></script>
</body>
</html>
`;

// A file of its own rather than an inline script, so a strict Content-Security-Policy can allow it.
const INIT = `window.ui = SwaggerUIBundle({ url: ${JSON.stringify(OPENAPI_PATH)}, dom_id: '#reference', deepLinking: true });\n`;

function swaggerUiFolder(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('swagger-ui-dist/package.json'));
}

/** The routes; mount at the root, before authentication (the document holds no secrets). */
export function openApiRoutes(config: Config): Router {
  const body = JSON.stringify(buildOpenApiDocument(config));
  const assets = swaggerUiFolder();
  const router = Router();
  router.get(OPENAPI_PATH, (_req, res) => {
    res.type('application/json').send(body);
  });
  router.get(DOCS_PATH, (_req, res) => {
    res.type('text/html; charset=utf-8').send(PAGE);
  });
  router.get(`${DOCS_PATH}/init.js`, (_req, res) => {
    res.type('text/javascript; charset=utf-8').send(INIT);
  });
  router.get(`${DOCS_PATH}/:asset`, (req, res, next) => {
    const type = Object.hasOwn(UI_ASSETS, req.params.asset) ? UI_ASSETS[req.params.asset] : undefined;
    if (type === undefined) {
      next();
      return;
    }
    res.type(type).sendFile(join(assets, req.params.asset), { maxAge: '1d' });
  });
  return router;
}

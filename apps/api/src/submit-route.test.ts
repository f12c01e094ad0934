import { describe, expect, it } from 'vitest';
import { matchSubmitRoute } from './submit-route.ts';

describe('matchSubmitRoute', () => {
  it('names the four submit routes with their templates, model and version', () => {
    const routes: [string, string, string | undefined, boolean][] = [
      ['/v1/models/ppocr-cls/infer', '/v1/models/:model/infer', undefined, false],
      ['/v1/models/ppocr-cls/versions/2/infer', '/v1/models/:model/versions/:version/infer', '2', false],
      ['/v1/models/ppocr-cls/infer:bulk', '/v1/models/:model/infer:bulk', undefined, true],
      [
        '/v1/models/ppocr-cls/versions/10/infer:bulk',
        '/v1/models/:model/versions/:version/infer:bulk',
        '10',
        true,
      ],
    ];
    for (const [url, template, version, bulk] of routes) {
      expect(matchSubmitRoute('POST', url)).toEqual({ template, model: 'ppocr-cls', version, bulk });
    }
  });

  it('matches as Express did: any case, one trailing slash, the query ignored, segments decoded', () => {
    expect(matchSubmitRoute('POST', '/V1/Models/noop/INFER/')?.model).toBe('noop');
    expect(matchSubmitRoute('POST', '/v1/models/noop/infer?x=1')?.template).toBe('/v1/models/:model/infer');
    expect(matchSubmitRoute('POST', '/v1/models/a%20b/infer')?.model).toBe('a b');
    // The version is passed on as sent: the route handler answers 404 for one that is not a number.
    expect(matchSubmitRoute('POST', '/v1/models/noop/versions/x/infer')?.version).toBe('x');
  });

  it('leaves every other request to Express', () => {
    expect(matchSubmitRoute('GET', '/v1/models/noop/infer')).toBeUndefined();
    expect(matchSubmitRoute('POST', '/v1/models/noop')).toBeUndefined();
    expect(matchSubmitRoute('POST', '/v1/models/noop/infer/extra')).toBeUndefined();
    expect(matchSubmitRoute('POST', '/v1/models//infer')).toBeUndefined();
    expect(matchSubmitRoute('POST', '/v1/models/noop/versions/infer')).toBeUndefined();
    expect(matchSubmitRoute('POST', '/v1/models/%E0%A4%A/infer')).toBeUndefined();
    expect(matchSubmitRoute(undefined, undefined)).toBeUndefined();
  });
});

/** A request to one of the submit routes: the hot path, served without Express (server.ts). */
export interface SubmitRoute {
  /** The route's template: the `route` label of its request metrics. */
  template: string;
  model: string;
  /** The `:version` segment as sent, when the route has one (server.ts checks it). */
  version: string | undefined;
  bulk: boolean;
}

// Express's defaults, kept: paths match case-insensitively and may end with one slash.
const SUBMIT_PATH = /^\/v1\/models\/([^/]+)\/(?:versions\/([^/]+)\/)?infer(:bulk)?\/?$/i;

/**
 * The submit route `method url` asks for, or undefined for any other request (Express serves
 * those). Path segments are percent-decoded as Express decodes route parameters; one that does not
 * decode goes to Express, which answers it as it answers any other.
 */
export function matchSubmitRoute(
  method: string | undefined,
  url: string | undefined,
): SubmitRoute | undefined {
  if (method !== 'POST' || url === undefined) return undefined;
  const query = url.indexOf('?');
  const match = SUBMIT_PATH.exec(query < 0 ? url : url.slice(0, query));
  if (match === null) return undefined;
  const [, rawModel = '', rawVersion, bulk] = match;
  let model: string;
  let version: string | undefined;
  try {
    model = decodeURIComponent(rawModel);
    version = rawVersion === undefined ? undefined : decodeURIComponent(rawVersion);
  } catch {
    return undefined;
  }
  const versioned = version === undefined ? '' : '/versions/:version';
  return {
    template: `/v1/models/:model${versioned}/infer${bulk === undefined ? '' : ':bulk'}`,
    model,
    version,
    bulk: bulk !== undefined,
  };
}

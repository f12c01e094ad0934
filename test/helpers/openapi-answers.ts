/**
 * Every answer the integration suite receives from an inferq API is checked against the OpenAPI
 * document that API serves (`/openapi.json`): a documented status, the required headers, a
 * documented content type and, for JSON, a body matching its schema. Registered as a setup file of
 * the integration projects (vitest.config.ts), it wraps the global fetch; APIs started by the suite
 * announce their address with `checkAnswersOf`. An answer off the document fails the test that
 * received it.
 */
import { AnswerChecker } from '../../apps/api/src/openapi/answer-check.ts';

const checkers = new Map<string, Promise<AnswerChecker>>();
const unchecked = globalThis.fetch;

/** Answers from `url`'s origin are checked from now on. */
export function checkAnswersOf(url: string): void {
  const { origin } = new URL(url);
  checkers.set(
    origin,
    unchecked(`${origin}/openapi.json`)
      .then((response) => response.json() as Promise<Record<string, unknown>>)
      .then((document) => new AnswerChecker(document)),
  );
}

function isText(contentType: string): boolean {
  return /json|text\/plain|text\/html/i.test(contentType);
}

globalThis.fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
  const response = await unchecked(input, init);
  const url = new URL(input instanceof Request ? input.url : String(input));
  const checker = checkers.get(url.origin);
  if (checker === undefined) return response;
  const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
  const contentType = response.headers.get('content-type') ?? '';
  const text = isText(contentType) ? await response.clone().text() : undefined;
  const problems = (await checker).check({
    method,
    path: url.pathname,
    status: response.status,
    headers: response.headers,
    ...(text === undefined ? {} : { text }),
  });
  if (problems.length > 0) {
    throw new Error(`an answer is not as /openapi.json documents it:\n  ${problems.join('\n  ')}`);
  }
  return response;
};

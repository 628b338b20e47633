import type { Plugin } from 'graphql-yoga';

export const DEFAULT_MAX_BODY_BYTES = 512 * 1024;

export const tooLarge = (limit: number, size?: number) =>
  Response.json(
    {
      errors: [
        {
          message: `Request body too large: ${size === undefined ? 'more than' : size} bytes, the limit is ${limit} bytes`,
          extensions: { code: 'PAYLOAD_TOO_LARGE' },
        },
      ],
    },
    { status: 413 },
  );

/** The 413 for a request whose declared Content-Length exceeds the limit, else undefined. */
export function declaredTooLarge(
  contentLength: string | null | undefined,
  limit: number,
): Response | undefined {
  if (contentLength == null) return undefined;
  const size = Number(contentLength);
  return size > limit ? tooLarge(limit, size) : undefined;
}

/**
 * Refuses a request whose declared Content-Length exceeds the limit before anything reads it
 * (inside yoga, so the 413 gets the usual response hooks such as CORS). The node server checks
 * the same before handing the request over, to close the connection. A body without a length
 * (chunked) is read here, at most `limit` bytes, and handed on buffered: doing it inside yoga's
 * pipeline keeps yoga's own node handler writing the response and the server context ({req,res},
 * the rate limiter's client address) on the request, which a hand-written side path lost.
 */
export function useBodyLimit(limit: number): Plugin {
  return {
    onRequest({ request, setRequest, endResponse, fetchAPI }) {
      const declared = request.headers.get('content-length');
      if (declared !== null) {
        const refused = declaredTooLarge(declared, limit);
        if (refused) endResponse(refused);
        return;
      }
      // Synchronous for every request with a length or without a body (the hot path): only a
      // chunked body costs an await.
      if (request.method === 'GET' || request.method === 'HEAD' || !request.body) return;
      return limitBody(request, limit, fetchAPI.Request).then((limited) => {
        if (limited instanceof Response) {
          // The rest of the body was never read: the connection cannot carry another request.
          const headers = new Headers(limited.headers);
          headers.set('connection', 'close');
          endResponse(new fetchAPI.Response(limited.body, { status: limited.status, headers }));
        } else setRequest(limited);
      });
    },
  };
}

/**
 * For a request without Content-Length: reads at most `limit` bytes of its body, then returns an
 * equivalent request with the buffered body (or a 413 response when it is longer).
 */
export async function limitBody(
  request: Request,
  limit: number,
  RequestCtor: typeof Request = Request,
): Promise<Request | Response> {
  if (!request.body || request.headers.get('content-length') !== null) return request;
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return tooLarge(limit);
    }
    chunks.push(value);
  }
  const headers = new Headers(request.headers);
  headers.set('content-length', String(size));
  return new RequestCtor(request.url, { method: request.method, headers, body: Buffer.concat(chunks) });
}

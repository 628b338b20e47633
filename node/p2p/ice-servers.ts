/**
 * `--ice-server` values: a bare STUN/TURN URL (`stun:10.0.0.1:3478`) or, for TURN with
 * credentials, the WebRTC `RTCIceServer` shape as JSON
 * (`{"urls":"turn:10.0.0.1:3478","username":"u","credential":"p"}`, `urls` one URL or a list).
 * Nothing is configured by default, so no WebRTC connection ever asks a public STUN server.
 */

/** One ICE server as node-datachannel's RTCPeerConnection takes it. */
export interface IceServer {
  readonly urls: string | readonly string[];
  readonly username?: string;
  readonly credential?: string;
}

/** Why an `--ice-server` value is refused. */
export class IceServerError extends Error {
  readonly code = 'bad-ice-server' as const;
  constructor(message: string) {
    super(message);
    this.name = 'IceServerError';
  }
}

const SCHEMES = ['stun:', 'stuns:', 'turn:', 'turns:'];

function checkUrl(url: unknown): string {
  if (typeof url !== 'string' || !SCHEMES.some((s) => url.startsWith(s)))
    throw new IceServerError(
      `an ICE server URL starts with ${SCHEMES.join(' ')} (got ${JSON.stringify(url)})`,
    );
  return url;
}

/** Parses one `--ice-server` value; throws IceServerError. */
export function parseIceServer(value: string): IceServer {
  const v = value.trim();
  if (!v.startsWith('{')) return { urls: checkUrl(v) };
  let o: unknown;
  try {
    o = JSON.parse(v);
  } catch {
    throw new IceServerError('is a URL or JSON {"urls","username","credential"} (the JSON does not parse)');
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o))
    throw new IceServerError('JSON must be an object');
  const { urls, username, credential, ...rest } = o as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length) throw new IceServerError(`unknown field(s) ${extra.join(', ')}`);
  const list = Array.isArray(urls) ? urls.map(checkUrl) : [checkUrl(urls)];
  if (!list.length) throw new IceServerError('needs at least one URL');
  if (username !== undefined && typeof username !== 'string')
    throw new IceServerError('username is a string');
  if (credential !== undefined && typeof credential !== 'string')
    throw new IceServerError('credential is a string');
  // A TURN server without credentials never allocates: say so now, not as a silent ICE failure.
  if (list.some((u) => u.startsWith('turn')) && (username === undefined || credential === undefined))
    throw new IceServerError('a TURN server needs username and credential');
  return {
    urls: list.length === 1 ? list[0]! : list,
    ...(username !== undefined ? { username } : {}),
    ...(credential !== undefined ? { credential } : {}),
  };
}

/** The `check` of the option: an error text or undefined. */
export function iceServerProblem(value: string): string | undefined {
  try {
    parseIceServer(value);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

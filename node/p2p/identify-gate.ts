/**
 * Identify for admitted peers only. libp2p's identify answers every connected peer at once with
 * our listen addresses (every transport, certhash included), every protocol we serve, our agent
 * version and the address we see it at. In roster mode a connection is only *pending* until the
 * admission handshake ends (admission-gate.ts), and a stranger that dials us would read all that
 * in the up to 2 s before it is refused. So identify's inbound handler waits for the peer's
 * verdict and runs only for an admitted peer; a refused or silent one gets its stream reset.
 *
 * No deadlock: the handshake runs on its own protocol (`negotiateFully: false`, no identify
 * needed), and the wait ends within the handshake deadline, inside identify's own 5 s timeout.
 * Our own identify of the peer (outbound: it tells gossipsub's topology what the peer speaks) is
 * not held: what a peer tells us costs us nothing, and its gossip is refused by score meanwhile.
 *
 * Ping stays served to pending peers on purpose: it echoes the 32 random bytes the pinger sent,
 * which tells it nothing the open connection does not, and libp2p bounds its streams (host.ts).
 *
 * How: the service factory gets a registrar whose `handle` wraps the handler it registers (the
 * Registrar interface only, no identify internals). Not libp2p 3's stream middleware
 * (`libp2p.use`): in libp2p 3.3.11 every inbound stream pushes its handler onto the protocol's
 * stored middleware array (connection.js `middleware.push`), so later streams, our outbound
 * identify included, ran earlier streams' handlers and our own identify of a pending peer failed.
 */
import type { IdentifyComponents } from '@libp2p/identify';
import type { Connection, PeerId, Stream, StreamHandler } from '@libp2p/interface';

/** libp2p's internal registrar, as services receive it (its package is not a dependency of ours). */
type Registrar = IdentifyComponents['registrar'];

/** The gate's question: `true` at once for an admitted peer, else its verdict within the deadline. */
export type WhenAdmitted = (peer: PeerId) => true | Promise<boolean>;

/** Why an inbound stream was reset before its handler ran. */
export class NotAdmittedError extends Error {
  readonly code = 'not-admitted';
  readonly protocol: string;
  constructor(protocol: string) {
    super(`${protocol} is served to admitted peers only`);
    this.protocol = protocol;
    this.name = 'NotAdmittedError';
  }
}

/** A stream handler that runs `handler` only once `admitted` says the remote peer is admitted. */
export function admittedOnly(
  handler: StreamHandler,
  admitted: WhenAdmitted,
  onWithheld?: (peer: PeerId, protocol: string) => void,
): StreamHandler {
  return async (stream: Stream, conn: Connection) => {
    const verdict = admitted(conn.remotePeer);
    if (verdict === true || (await verdict)) return handler(stream, conn);
    onWithheld?.(conn.remotePeer, stream.protocol);
    stream.abort(new NotAdmittedError(stream.protocol));
  };
}

/** A libp2p service factory whose inbound protocol handlers answer admitted peers only. */
export function servedToAdmittedOnly<C extends { registrar: Registrar }, S>(
  factory: (components: C) => S,
  admitted: WhenAdmitted,
  onWithheld?: (peer: PeerId, protocol: string) => void,
): (components: C) => S {
  return (components) => {
    const registrar = components.registrar;
    const handle: Registrar['handle'] = (protocol, handler, options) =>
      registrar.handle(protocol, admittedOnly(handler, admitted, onWithheld), options);
    const gated = new Proxy(registrar, {
      get(target, prop) {
        if (prop === 'handle') return handle;
        const value = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    return factory(
      new Proxy(components, {
        get: (target, prop) => (prop === 'registrar' ? gated : Reflect.get(target, prop, target)),
      }),
    );
  };
}

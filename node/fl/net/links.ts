/**
 * ParticipantLinks: a remote participant over the FL req/resp protocols, and the coordinating
 * node's own participant, called directly (a coordinator with data trains like everyone else).
 */
import type { PeerId } from '@libp2p/interface';
import type { ReqResp } from '../../p2p/reqresp.ts';
import type { ParticipantLink } from './coordinator.ts';
import type { FlParticipant } from './participant.ts';
import type {
  FL_ANNOUNCE,
  FL_COMMIT,
  FL_CONFIRM,
  FL_END,
  FL_KEYS,
  FL_SHARES,
  FL_TRAIN,
  FL_UNMASK,
} from './protocols.ts';

/** The specs a link uses (the service passes versions that count bytes). */
export interface RoundSpecs {
  readonly announce: typeof FL_ANNOUNCE;
  readonly keys: typeof FL_KEYS;
  readonly shares: typeof FL_SHARES;
  readonly train: typeof FL_TRAIN;
  readonly confirm: typeof FL_CONFIRM;
  readonly unmask: typeof FL_UNMASK;
  readonly commit: typeof FL_COMMIT;
  /** Absent: the link does not tell participants of a failed round. */
  readonly end?: typeof FL_END;
}

const one = async <T>(p: Promise<T[]>): Promise<T> => {
  const [x] = await p;
  if (x === undefined) throw new Error('empty answer');
  return x;
};

export function remoteLink(
  reqresp: Pick<ReqResp, 'request'>,
  peer: PeerId,
  specs: RoundSpecs,
): ParticipantLink {
  return {
    peerId: peer.toString(),
    announce: (a) => one(reqresp.request(peer, specs.announce, a)),
    keys: (k) => one(reqresp.request(peer, specs.keys, k)),
    shares: (s) => one(reqresp.request(peer, specs.shares, s)),
    train: (t, timeoutMs) => one(reqresp.request(peer, specs.train, t, timeoutMs)),
    confirm: (c) => one(reqresp.request(peer, specs.confirm, c)),
    unmask: (u) => one(reqresp.request(peer, specs.unmask, u)),
    commit: async (c) => {
      await one(reqresp.request(peer, specs.commit, c));
    },
    ...(specs.end ? { end: async (e) => void (await one(reqresp.request(peer, specs.end!, e))) } : {}),
  };
}

export function localLink(self: string, participant: FlParticipant): ParticipantLink {
  return {
    peerId: self,
    announce: (a) => participant.announce(self, a),
    keys: async (k) => participant.keys(self, k),
    shares: async (s) => participant.shares(self, s),
    train: async (t) => {
      // Training blocks the event loop: let the requests to remote participants leave first.
      await new Promise((r) => setTimeout(r, 20));
      return participant.train(self, t);
    },
    confirm: async (c) => participant.confirm(self, c),
    unmask: async (u) => participant.unmask(self, u),
    commit: async (c) => {
      await participant.commit(self, c);
    },
    end: async (e) => {
      participant.end(self, e);
    },
  };
}

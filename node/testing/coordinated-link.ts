/**
 * A participant driven in process by a coordinator of another identity. localLink (links.ts) is
 * the coordinating node's own participant, which calls with its own id: a test that gives every
 * participant a localLink makes each one its own round's coordinator, and so a member of its own
 * roster (which the consistency step's quorum treats differently, survivor-set.ts).
 */
import type { ParticipantLink } from '../fl/net/coordinator.ts';
import type { FlParticipant } from '../fl/net/participant.ts';

export function linkFrom(coordinator: string, peerId: string, p: FlParticipant): ParticipantLink {
  return {
    peerId,
    announce: (a) => p.announce(coordinator, a),
    keys: async (k) => p.keys(coordinator, k),
    shares: async (s) => p.shares(coordinator, s),
    train: async (t) => p.train(coordinator, t),
    confirm: (c) => p.confirm(coordinator, c),
    unmask: (u) => p.unmask(coordinator, u),
    commit: async (c) => {
      await p.commit(coordinator, c);
    },
    end: async (e) => {
      p.end(coordinator, e);
    },
  };
}

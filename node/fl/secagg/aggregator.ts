/**
 * The aggregator's side of secure aggregation (see protocol.ts for the rounds): route the
 * encrypted key shares, collect masked updates one by one, and unmask the survivors' sum.
 * Every function is pure; a bad message is reported against its sender and never aborts a round.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesEqual } from '../../chain/bytes.ts';
import {
  decodeMasked,
  decodeShare,
  type EncryptedShare,
  type KeyAdvertisement,
  type MaskedUpdate,
  SecAggError,
  type UnmaskingShares,
} from './messages.ts';
import { type Delivered, pairwiseSeed, type Rejected, type SecAggConfig } from './protocol.ts';
import { addInto, expandMask, subInto } from './ring.ts';
import { combineShares, type Share } from './shamir.ts';

/**
 * Aggregator, round 1: decode the share messages and route them. A sender is in U2 only if it
 * sent a valid share to every other member of U1; invalid messages are reported, not fatal.
 */
export function routeShares(
  config: SecAggConfig,
  roster: readonly number[],
  messages: readonly Delivered[],
): { u2: number[]; inbox: Map<number, EncryptedShare[]>; rejected: Rejected[] } {
  const expect = { roundId: config.roundId, participants: new Set(roster) };
  const bySender = new Map<number, Map<number, EncryptedShare>>();
  const rejected: Rejected[] = [];
  for (const { from, bytes } of messages) {
    try {
      const s = decodeShare(bytes, expect);
      if (s.from !== from)
        throw new SecAggError('protocol-violation', `${from} sent a share claiming ${s.from}`);
      const out = bySender.get(s.from) ?? new Map<number, EncryptedShare>();
      if (out.has(s.to)) throw new SecAggError('duplicate', `${s.from} → ${s.to} sent twice`);
      out.set(s.to, s);
      bySender.set(s.from, out);
    } catch (e) {
      if (!(e instanceof SecAggError)) throw e;
      rejected.push({ from, error: e });
    }
  }
  // A sender with any rejected share cannot be in U2: someone would lack its share.
  const bad = new Set(rejected.map((r) => r.from));
  const u2 = roster
    .filter((u) => !bad.has(u) && (bySender.get(u)?.size ?? 0) === roster.length - 1)
    .sort((a, b) => a - b);
  const inbox = new Map<number, EncryptedShare[]>(u2.map((v) => [v, []]));
  for (const u of u2) for (const [to, s] of bySender.get(u)!) if (inbox.has(to)) inbox.get(to)!.push(s);
  return { u2, inbox, rejected };
}

/**
 * Aggregator, round 2: decode masked updates. Malformed, oversized, duplicate or foreign messages
 * are rejected one by one; their senders count as dropped, so the round goes on without them.
 */
export function collectMasked(
  config: SecAggConfig,
  u2: readonly number[],
  messages: readonly Delivered[],
): { received: MaskedUpdate[]; rejected: Rejected[] } {
  const expect = { roundId: config.roundId, participants: new Set(u2), dim: config.dim };
  const received = new Map<number, MaskedUpdate>();
  const rejected: Rejected[] = [];
  const bad = new Set<number>();
  for (const { from, bytes } of messages) {
    try {
      if (bad.has(from) || received.has(from))
        throw new SecAggError('duplicate', `second update from ${from}`);
      const m = decodeMasked(bytes, expect);
      if (m.from !== from)
        throw new SecAggError('protocol-violation', `${from} sent an update claiming ${m.from}`);
      received.set(m.from, m);
    } catch (e) {
      if (!(e instanceof SecAggError)) throw e;
      // Whatever else it sent, a sender with a rejected update is out of this round's sum.
      received.delete(from);
      bad.add(from);
      rejected.push({ from, error: e });
    }
  }
  return { received: [...received.values()].sort((a, b) => a.from - b.from), rejected };
}

/**
 * Round 4: Σ_{u∈U3} x_u in the ring. `roster` holds the advertisements of U2, `received` the
 * masked updates of U3, `reveals` the unmasking messages of at least t survivors.
 */
export function unmaskSum(
  config: SecAggConfig,
  roster: readonly KeyAdvertisement[],
  received: readonly MaskedUpdate[],
  reveals: readonly UnmaskingShares[],
): Uint32Array {
  const adverts = new Map(roster.map((a) => [a.from, a]));
  const u3 = new Set(received.map((m) => m.from));
  if (u3.size !== received.length) throw new SecAggError('duplicate', 'two updates from one participant');
  for (const u of u3) if (!adverts.has(u)) throw new SecAggError('unknown-participant', `update from ${u}`);
  const t = config.threshold;
  const selfShares = new Map<number, Share[]>();
  const maskShares = new Map<number, Share[]>();
  const revealers = new Set<number>();
  for (const r of reveals) {
    if (!u3.has(r.from) || revealers.has(r.from)) continue; // only survivors, once each
    revealers.add(r.from);
    for (const s of r.shares) {
      if (!adverts.has(s.of)) continue;
      // A share of the wrong kind would unmask an individual input; it is never used.
      if ((s.kind === 'self') !== u3.has(s.of))
        throw new SecAggError('protocol-violation', `${r.from} revealed ${s.kind} of ${s.of}`);
      const into = s.kind === 'self' ? selfShares : maskShares;
      into.set(s.of, [...(into.get(s.of) ?? []), { x: r.from, y: s.share }]);
    }
  }
  if (revealers.size < t) throw new SecAggError('too-few-participants', `${revealers.size} of ${t} reveals`);
  const sum = new Uint32Array(config.dim);
  for (const m of received) addInto(sum, m.masked);
  for (const u of u3) {
    const shares = selfShares.get(u) ?? [];
    if (shares.length < t)
      throw new SecAggError('reconstruction-failed', `self mask of ${u}: ${shares.length} shares`);
    const seed = combineShares(shares, t);
    if (!bytesEqual(sha256(seed), adverts.get(u)!.selfMaskCommitment)) {
      throw new SecAggError('reconstruction-failed', `self mask of ${u} does not match its commitment`);
    }
    subInto(sum, expandMask(seed, config.dim));
  }
  for (const [u, a] of adverts) {
    if (u3.has(u)) continue;
    const shares = maskShares.get(u) ?? [];
    if (shares.length < t)
      throw new SecAggError('reconstruction-failed', `mask key of ${u}: ${shares.length} shares`);
    const secret = combineShares(shares, t);
    if (!bytesEqual(x25519.getPublicKey(secret), a.maskPublic)) {
      throw new SecAggError('reconstruction-failed', `mask key of ${u} does not match its public key`);
    }
    for (const v of u3) {
      const mask = expandMask(
        pairwiseSeed(config.roundId, secret, adverts.get(v)!.maskPublic, u, v),
        config.dim,
      );
      // Survivor v added the mask if u > v and subtracted it if u < v; undo that.
      if (u > v) subInto(sum, mask);
      else addInto(sum, mask);
    }
  }
  return sum;
}

/**
 * The coordinator's side of a round over the network: announce → roster and key adverts →
 * share routing → masked updates until the deadline → reveals → unmasked sum → FedAvg. It talks
 * to participants only through `ParticipantLink`s (libp2p streams, or the node itself), so the
 * whole orchestration runs in tests without a network. Refusals, timeouts, dropouts and bad
 * messages leave a participant out of the round; the round fails only below the threshold.
 */

import { FL_DEFAULTS } from '../../options.ts';
import { checkAggregateRange } from '../aggregate-range.ts';
import { type Aggregate, applyAggregate, type DpConfig, layoutDim, roundQuantiser } from '../local-round.ts';
import type { Params, TrainOptions } from '../logistic.ts';
import type { RdpAccountant } from '../rdp-accountant.ts';
import { collectMasked, routeShares, unmaskSum } from '../secagg/aggregator.ts';
import { decodeUnmask, encodeShare, type KeyAdvertisement, SecAggError } from '../secagg/messages.ts';
import type { Delivered, SecAggConfig } from '../secagg/protocol.ts';
import { dequantise } from '../secagg/ring.ts';
import { type AdvertVerifier, openSignedAdvert, rosterMember, runDigest } from './advert-signature.ts';
import type { EndRequest } from './protocols.ts';
import {
  confirmationMessage,
  confirmationQuorum,
  peerIdVerifier,
  SURVIVOR_SIGNATURE_BYTES,
  type SurvivorConfirmation,
  type SurvivorSigner,
  survivorSetMessage,
} from './survivor-set.ts';
import type {
  Announcement,
  AnnounceReply,
  CommitRequest,
  ConfirmRequest,
  KeysRequest,
  RoundPrivacy,
  SharesRequest,
  TrainRequest,
  UnmaskRequest,
} from './wire.ts';

/** One participant as the coordinator reaches it. Every method may reject (timeouts, refusals). */
export interface ParticipantLink {
  readonly peerId: string;
  announce(a: Announcement): Promise<AnnounceReply>;
  keys(k: KeysRequest): Promise<Uint8Array>;
  shares(s: SharesRequest): Promise<Uint8Array[]>;
  train(t: TrainRequest, timeoutMs: number): Promise<Uint8Array>;
  /** The consistency step: the participant's signature over the U3 it was shown. */
  confirm(c: ConfirmRequest): Promise<Uint8Array>;
  unmask(u: UnmaskRequest): Promise<Uint8Array>;
  commit(c: CommitRequest): Promise<void>;
  /** The round failed: the participant may forget it (protocols.ts FL_END). Absent: not told. */
  end?(e: EndRequest): Promise<void>;
}

export type Stage = 'announce' | 'keys' | 'shares' | 'train' | 'confirm' | 'unmask';

export interface LeftOut {
  readonly peerId: string;
  readonly stage: Stage;
  readonly reason: string;
  /** Set when a message was rejected (SecAggError code), not just missing. */
  readonly code?: string;
}

export interface NetworkRoundConfig {
  readonly roundId: Uint8Array;
  /** Round number of the version this round produces. */
  readonly round: number;
  readonly dp: DpConfig;
  readonly train: TrainOptions;
  readonly deadlineMs: number;
  /**
   * The round's DP mode (wire.ts). `record`: `dp` is the secure-aggregation layer's bound
   * (record-contribution.ts recordSecAggDp) and each participant's ledger prices the DP-SGD.
   * Default `update`, which is what `dp` alone describes.
   */
  readonly privacy?: RoundPrivacy;
  /** Dropouts after key sharing the round survives; sets the threshold (default 1). */
  readonly dropoutTolerance?: number;
  /**
   * Fewest participants a round may start with (default FL_DEFAULTS.minRosterMembers, which
   * participants hold rosters to: fewer would only be refused at the keys step).
   */
  readonly minParticipants?: number;
  readonly serverLearningRate?: number;
  readonly samplingRate?: number;
}

export interface NetworkRoundResult extends Aggregate {
  readonly included: readonly string[];
  readonly leftOut: readonly LeftOut[];
  readonly threshold: number;
  /**
   * Record mode: per included participant, the ε it reported having spent in all with this round
   * (at its δ); the version's ε is the largest. Empty in update mode.
   */
  readonly epsilonByPeer: ReadonlyMap<string, number>;
}

/**
 * Why a round failed, a metric label (cairn_fl_rounds_failed_total): too few participants at some
 * step, the sum would not unmask, the unmasked aggregate is outside what honest contributions can
 * sum to (aggregate-range.ts), too few survivors confirmed U3, or the new version's held-out loss regressed (round-runner.ts).
 */
export type RoundFailureReason =
  | 'too-few-participants'
  | 'unmask-failed'
  /** Too few survivors signed U3 for the participants' quorum (survivor-set.ts). */
  | 'too-few-confirmations'
  | 'aggregate-out-of-range'
  | 'loss-regressed';

export class RoundFailed extends Error {
  override readonly name = 'RoundFailed';
  readonly leftOut: readonly LeftOut[];
  readonly reason: RoundFailureReason;
  constructor(
    message: string,
    leftOut: readonly LeftOut[],
    reason: RoundFailureReason = 'too-few-participants',
  ) {
    super(message);
    this.leftOut = leftOut;
    this.reason = reason;
  }
}

/** Threshold t > n/2 that tolerates `tolerance` dropouts where n allows it. */
export function thresholdFor(n: number, tolerance: number): number {
  return Math.min(n, Math.max(Math.floor(n / 2) + 1, n - tolerance));
}

const reasonOf = (err: unknown) => (err instanceof Error ? err.message : String(err)).slice(0, 200);

/** Runs `fn` on every link at once; splits the outcomes into answers and left-out participants. */
async function step<T>(
  links: readonly ParticipantLink[],
  stage: Stage,
  fn: (l: ParticipantLink) => Promise<T>,
): Promise<{ ok: Map<string, T>; failed: LeftOut[] }> {
  const settled = await Promise.allSettled(links.map(fn));
  const ok = new Map<string, T>();
  const failed: LeftOut[] = [];
  settled.forEach((s, i) => {
    const peerId = links[i]!.peerId;
    if (s.status === 'fulfilled') ok.set(peerId, s.value);
    else failed.push({ peerId, stage, reason: reasonOf(s.reason) });
  });
  return { ok, failed };
}

export interface CoordinateOptions {
  /** Signs the survivor set with this node's identity key: participants unmask only for that. */
  readonly sign: SurvivorSigner;
  readonly accountant?: RdpAccountant;
  /** Checks a participant's signature over its advert (default: its peer id's key). */
  readonly verifyAdverts?: AdvertVerifier;
  /** Called once per rejected message, e.g. to penalise the sender. */
  readonly onRejected?: (peerId: string, code: string, message: string) => void;
  /**
   * This node's peer id: when it is on the roster its own confirmation does not count towards
   * the participants' quorum of others (survivor-set.ts confirmationQuorum). Absent: not on it.
   */
  readonly self?: string;
  /**
   * The participants' collusion tolerance (FL_DEFAULTS.collusionTolerance, the network's
   * default): with fewer confirmations than that quorum the round fails before any reveal.
   */
  readonly collusionTolerance?: number;
}

export async function coordinateRound(
  global: { readonly hash: Uint8Array | null; readonly params: Params },
  links: readonly ParticipantLink[],
  cfg: NetworkRoundConfig,
  o: CoordinateOptions,
): Promise<NetworkRoundResult> {
  const leftOut: LeftOut[] = [];
  const fail = (msg: string, reason?: RoundFailureReason): never => {
    throw new RoundFailed(msg, leftOut, reason);
  };
  const reject = (peerId: string, stage: Stage, err: unknown) => {
    if (!(err instanceof SecAggError)) throw err;
    leftOut.push({ peerId, stage, reason: err.message.slice(0, 200), code: err.code });
    o.onRejected?.(peerId, err.code, err.message);
  };

  // 1. Announce; participants accept or decline.
  const announcement: Announcement = {
    roundId: cfg.roundId,
    round: cfg.round,
    modelHash: global.hash,
    paramCount: global.params.length,
    dp: cfg.dp,
    train: cfg.train,
    deadlineMs: cfg.deadlineMs,
    privacy: cfg.privacy ?? { mode: 'update' },
  };
  const ann = await step(links, 'announce', (l) => l.announce(announcement));
  leftOut.push(...ann.failed);
  for (const [peerId, r] of ann.ok)
    if (!r.accept) leftOut.push({ peerId, stage: 'announce', reason: `declined: ${r.reason}` });
  // Roster order is by peer id, so ids do not reveal who answered first.
  const accepted = links
    .filter((l) => ann.ok.get(l.peerId)?.accept)
    .sort((a, b) => (a.peerId < b.peerId ? -1 : 1));
  if (accepted.length < Math.max(2, cfg.minParticipants ?? FL_DEFAULTS.minRosterMembers))
    fail(`too few participants: ${accepted.length} accepted`);

  // 2. Roster and key advertisements.
  const n = accepted.length;
  const threshold = thresholdFor(n, cfg.dropoutTolerance ?? 1);
  const roster = accepted.map((l) => l.peerId);
  const idOf = new Map(roster.map((p, i) => [p, i + 1]));
  const linkOf = new Map(accepted.map((l) => [idOf.get(l.peerId)!, l]));
  const sa: SecAggConfig = {
    roundId: cfg.roundId,
    participants: roster.map((_, i) => i + 1),
    threshold,
    dim: layoutDim(global.params.length),
  };
  const rosterStatement = { roundId: cfg.roundId, threshold, participants: roster };
  const keys = await step(accepted, 'keys', (l) => l.keys(rosterStatement));
  leftOut.push(...keys.failed);
  // Adverts are relayed as signed: participants share only with adverts their owners signed, so
  // one that does not verify is left out here rather than spoiling everyone's shares step.
  const verifyAdverts = o.verifyAdverts ?? peerIdVerifier;
  const adverts = new Map<number, { bytes: Uint8Array; advert: KeyAdvertisement }>();
  for (const [peerId, bytes] of keys.ok) {
    try {
      const advert = await openSignedAdvert(bytes, rosterStatement, verifyAdverts);
      if (advert.from !== idOf.get(peerId))
        throw new SecAggError('protocol-violation', `advert claims id ${advert.from}`);
      adverts.set(advert.from, { bytes, advert });
    } catch (err) {
      reject(peerId, 'keys', err);
    }
  }
  if (adverts.size < threshold) fail(`${adverts.size} key advertisements, threshold ${threshold}`);

  // 3. Shares: everyone in U1 encrypts a share to everyone else; the coordinator routes them.
  const u1 = [...adverts.keys()].sort((a, b) => a - b);
  const u1Links = u1.map((id) => linkOf.get(id)!);
  const advertBytes = u1.map((id) => adverts.get(id)!.bytes);
  const shares = await step(u1Links, 'shares', (l) =>
    l.shares({ roundId: cfg.roundId, adverts: advertBytes }),
  );
  leftOut.push(...shares.failed);
  const shareMessages: Delivered[] = [];
  for (const [peerId, list] of shares.ok)
    for (const bytes of list) shareMessages.push({ from: idOf.get(peerId)!, bytes });
  const routed = routeShares(sa, u1, shareMessages);
  const peerOf = (id: number) => roster[id - 1]!;
  for (const r of routed.rejected) reject(peerOf(r.from), 'shares', r.error);
  for (const id of u1)
    if (shares.ok.has(peerOf(id)) && !routed.u2.includes(id) && !routed.rejected.some((r) => r.from === id))
      leftOut.push({ peerId: peerOf(id), stage: 'shares', reason: 'incomplete shares' });
  if (routed.u2.length < threshold)
    fail(`${routed.u2.length} participants shared keys, threshold ${threshold}`);

  // 4. Masked updates until the deadline.
  const u2Links = routed.u2.map((id) => linkOf.get(id)!);
  const trained = await step(u2Links, 'train', (l) => {
    const id = idOf.get(l.peerId)!;
    return l.train(
      { roundId: cfg.roundId, u2: routed.u2, inbox: routed.inbox.get(id)!.map(encodeShare) },
      cfg.deadlineMs,
    );
  });
  leftOut.push(...trained.failed);
  const delivered: Delivered[] = [...trained.ok].map(([peerId, bytes]) => ({
    from: idOf.get(peerId)!,
    bytes,
  }));
  const collected = collectMasked(sa, routed.u2, delivered);
  for (const r of collected.rejected) reject(peerOf(r.from), 'train', r.error);
  const survivors = collected.received.map((m) => m.from);
  // Participants reveal only for a survivor set of at least the roster minimum.
  const minSurvivors = Math.max(threshold, cfg.minParticipants ?? FL_DEFAULTS.minRosterMembers);
  if (survivors.length < minSurvivors)
    fail(`${survivors.length} masked updates, at least ${minSurvivors} needed (threshold ${threshold})`);

  // 5. Consistency (survivor-set.ts): each survivor signs the U3 it was shown; the signatures go
  // to every survivor, which reveals only when a quorum signed that same set.
  // survivors ascend (collectMasked sorts them): the canonical form that is signed.
  const signature = await o.sign(survivorSetMessage(cfg.roundId, survivors));
  const named: ConfirmRequest = { roundId: cfg.roundId, survivors, signature };
  const survivorLinks = survivors.map((id) => linkOf.get(id)!);
  const confirmed = await step(survivorLinks, 'confirm', (l) => l.confirm(named));
  leftOut.push(...confirmed.failed);
  // The run every survivor saw at its shares step: what each confirmation is bound to.
  const confirmMessage = confirmationMessage(cfg.roundId, runDigest(rosterStatement, advertBytes), survivors);
  const confirmations: SurvivorConfirmation[] = [];
  for (const id of survivors) {
    const peerId = peerOf(id);
    const sig = confirmed.ok.get(peerId);
    if (!sig) continue;
    // Relayed only when valid: a participant refuses (and penalises) a request with a bad one.
    const valid =
      sig.length === SURVIVOR_SIGNATURE_BYTES &&
      (await verifyAdverts(peerId, confirmMessage, sig).catch(() => false));
    if (valid) confirmations.push({ id, signature: sig });
    else reject(peerId, 'confirm', new SecAggError('bad-signature', 'confirmation does not verify'));
  }
  const self = o.self === undefined ? undefined : rosterMember(o.self);
  const need = confirmationQuorum(
    roster.length,
    self !== undefined && roster.some((p) => rosterMember(p) === self),
    threshold,
    o.collusionTolerance ?? FL_DEFAULTS.collusionTolerance,
  );
  const others = confirmations.filter((c) => rosterMember(peerOf(c.id)) !== self).length;
  if (confirmations.length < need.total || others < need.others)
    fail(
      `${confirmations.length} survivors confirmed U3 (${others} besides this node), ${need.total} (${need.others}) needed`,
      'too-few-confirmations',
    );

  // 6. Reveals from the confirmed survivors; the sum unmasks if at least t of them answer.
  const revealLinks = confirmations.map((c) => linkOf.get(c.id)!);
  const reveals = await step(revealLinks, 'unmask', (l) => l.unmask({ ...named, confirmations }));
  leftOut.push(...reveals.failed);
  const unmaskExpect = { roundId: cfg.roundId, participants: new Set(routed.u2) };
  const decoded = [];
  for (const [peerId, bytes] of reveals.ok) {
    try {
      const u = decodeUnmask(bytes, unmaskExpect);
      if (u.from !== idOf.get(peerId))
        throw new SecAggError('protocol-violation', `reveal claims id ${u.from}`);
      decoded.push(u);
    } catch (err) {
      reject(peerId, 'unmask', err);
    }
  }
  let sum: Float64Array;
  const quantiser = roundQuantiser(cfg.dp, n, threshold);
  try {
    const rosterAdverts = routed.u2.map((id) => adverts.get(id)!.advert);
    const ring = unmaskSum(sa, rosterAdverts, collected.received, decoded);
    sum = dequantise(ring, quantiser);
  } catch (err) {
    if (!(err instanceof SecAggError)) throw err;
    return fail(`unmasking failed: ${err.message}`, 'unmask-failed');
  }
  // 7. No single masked update could be checked; their sum can. Nothing of it is applied if not.
  const range = checkAggregateRange(
    sum,
    global.params.length,
    survivors.length,
    cfg.dp,
    threshold,
    quantiser,
  );
  if (!range.ok) {
    // This node has seen the noised sum all the same: its privacy cost is spent, as for a
    // version the runner refuses later (loss-regressed), so the next round's ε includes it.
    if (cfg.dp.noiseMultiplier > 0) o.accountant?.step(cfg.samplingRate ?? 1, cfg.dp.noiseMultiplier);
    fail(`aggregate out of range: ${range.why}`, 'aggregate-out-of-range');
  }
  const agg = applyAggregate(global.params, sum, survivors.length, cfg, o.accountant);
  const included = survivors.map(peerOf);
  // A survivor that did not reveal is still in the sum: it is not left out.
  const out = leftOut.filter((l) => !included.includes(l.peerId));
  const epsilonByPeer = new Map<string, number>();
  if (announcement.privacy.mode === 'record')
    for (const p of included) epsilonByPeer.set(p, ann.ok.get(p)?.epsilon ?? 0);
  return { ...agg, included, leftOut: out, threshold, epsilonByPeer };
}

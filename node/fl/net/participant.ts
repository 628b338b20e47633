/**
 * A node's participant side of a round: answers the coordinator's requests step by step,
 * holding the round's secure-aggregation state in between. No I/O of its own: the service hands
 * it requests with their authenticated sender and supplies the data slice and the models.
 */
import { type Hex, toHex } from '../../chain/bytes.ts';
import { DecodeError } from '../../chain/codec/errors.ts';
import { FL_DEFAULTS } from '../../options.ts';
import type { Examples } from '../features.ts';
import {
  corruptMasked,
  cryptoRoundRandomness,
  layoutDim,
  type MaskedCorruption,
  maskedContribution,
  type RoundRandomness,
  roundQuantiser,
} from '../local-round.ts';
import type { Params } from '../logistic.ts';
import { PrivacyBudgetError } from '../privacy-budget.ts';
import { recordContribution } from '../record-contribution.ts';
import {
  decodeShare,
  encodeAdvertisement,
  encodeMasked,
  encodeShare,
  encodeUnmask,
  SecAggError,
  type SecAggErrorCode,
} from '../secagg/messages.ts';
import {
  createParticipant,
  maskUpdate,
  type Participant,
  receiveShares,
  revealOnce,
  shareKeys,
} from '../secagg/protocol.ts';
import { quantise } from '../secagg/ring.ts';
import {
  type AdvertVerifier,
  advertSigningMessage,
  encodeSignedAdvert,
  openSignedAdvert,
  rosterMember,
  runDigest,
} from './advert-signature.ts';
import { modelBytesFor } from './model-codec.ts';
import type { PrivacyGate } from './privacy-gate.ts';
import {
  confirmationMessage,
  confirmationQuorum,
  isCanonicalSet,
  peerIdVerifier,
  SURVIVOR_SIGNATURE_BYTES,
  type SurvivorSigner,
  type SurvivorVerifier,
  survivorSetMessage,
} from './survivor-set.ts';
import type {
  Announcement,
  AnnounceReply,
  CommitRequest,
  ConfirmRequest,
  KeysRequest,
  SharesRequest,
  TrainRequest,
  UnmaskRequest,
} from './wire.ts';

export type UnmaskRefusal =
  | 'bad-signature'
  | 'second-survivor-set'
  /** An unmask request before this participant confirmed (signed) a survivor set. */
  | 'not-confirmed'
  /** A relayed confirmation that is not a survivor's valid signature over this set. */
  | 'bad-confirmation'
  /** Fewer valid confirmations than the quorum (survivor-set.ts confirmationQuorum). */
  | 'too-few-confirmations'
  /** A survivor set below the roster minimum: the sum would cover too few updates. */
  | 'too-few-survivors';

/**
 * A coordinator's unmask request this participant will not answer: the coordinator broke the
 * protocol (the service penalises it). A SecAggError, so it travels back as an invalid request.
 */
export class UnmaskRefused extends SecAggError {
  readonly reason: UnmaskRefusal;
  constructor(reason: UnmaskRefusal, message: string) {
    super('protocol-violation', message);
    this.reason = reason;
  }
}

export type SecAggRefusal =
  /** keys or shares asked a second time in one round (shares: a new set of the same secrets). */
  | 'asked-twice'
  /** Fewer distinct members than the minimum (FL_DEFAULTS.minRosterMembers). */
  | 'roster-too-small'
  | 'roster-repeats'
  /** A roster entry that does not hold `train` (roster networks). */
  | 'not-a-trainer'
  /** An advert whose signature does not verify against the member it names. */
  | 'bad-advert-signature'
  /**
   * A roster too small for the confirmation quorum this node demands (survivor-set.ts
   * confirmationQuorum with its collusion tolerance): the round could never be unmasked safely.
   */
  | 'quorum-unreachable';

/**
 * A coordinator's keys or shares request this participant will not answer because answering
 * could hand the coordinator a participant's own update (issue 16, findings 1 and 2). A
 * SecAggError, so it travels back as an invalid request; the service counts it and penalises
 * the coordinator.
 */
export class SecAggRefused extends SecAggError {
  readonly step: 'keys' | 'shares';
  readonly reason: SecAggRefusal;
  constructor(step: 'keys' | 'shares', reason: SecAggRefusal, code: SecAggErrorCode, message: string) {
    super(code, message);
    this.step = step;
    this.reason = reason;
  }
}

/**
 * An fl-commit for a round this participant never trained in (no masked update of its own went
 * into the version): refused rather than held, so announce-only rounds cannot push the version of
 * a round it did train in out of its candidates (model-store.ts; ATK-16). An honest coordinator
 * commits only to the participants it asked to train (round-runner.ts). A SecAggError, so it
 * travels back as an invalid request; the service counts it and penalises the coordinator.
 */
export class CommitRefused extends SecAggError {
  readonly reason = 'untrained';
  constructor(message: string) {
    super('protocol-violation', message);
  }
}

/**
 * Rounds a participant holds at once; more announcements are declined as `busy`. Each holds the
 * global model (16 385 floats, ~131 kB) and secure-aggregation state, so a burst of rounds that
 * fail before their commit costs at most this many until they expire.
 */
export const MAX_HELD_ROUNDS = 4;
/**
 * Of the `max` rounds a participant holds, the most one coordinator may hold at once: half,
 * rounded down, at least 1. An announcement costs its coordinator nothing (no training, no ε
 * until the train step), so without a share one coordinator announcing MAX_HELD_ROUNDS rounds at
 * the longest deadline, again every 11 minutes, kept every node out of every other round
 * (ATK-16, one coordinator holding every slot). With half, another coordinator finds a slot.
 */
export const coordinatorShare = (max: number): number => Math.max(1, Math.floor(max / 2));
/** How long a round's state outlives its training deadline: room for the steps around training. */
export const ROUND_STATE_GRACE_MS = 60_000;

/**
 * Why a participant declines an announcement, as counted (cairn_fl_announce_declined_total); the
 * reason on the wire says more. `busy`: it holds MAX_HELD_ROUNDS rounds already;
 * `busy-coordinator`: the announcer holds its share of them already (coordinatorShare).
 */
export const ANNOUNCE_DECLINES = [
  'policy',
  'duplicate',
  'busy',
  'busy-coordinator',
  'no-data',
  'param-mismatch',
  'privacy',
  'model-unavailable',
] as const;
export type AnnounceDecline = (typeof ANNOUNCE_DECLINES)[number];

/** Test-only misbehaviour, to show that the coordinator copes. */
export type Misbehaviour = MaskedCorruption;

export interface ParticipantOptions {
  /** Own peer id. */
  readonly self: string;
  /** The local training slice, or undefined when this node has none (it then declines). */
  readonly data: () => Examples | undefined;
  /** Policy: decline every round. */
  readonly decline?: boolean;
  readonly misbehave?: Misbehaviour;
  /**
   * The node's privacy decisions and ledger (privacy-gate.ts). Without one the participant has
   * no ledger to charge: it takes update-level rounds and declines record-level ones.
   */
  readonly privacy?: Pick<PrivacyGate, 'decide' | 'charge' | 'noteDecline' | 'committed'>;
  /** The global model by hash (null = zeros), fetched from `from` when not stored. */
  resolveModel(hash: Uint8Array | null, paramCount: number, from: string): Promise<Params>;
  /**
   * Takes a round's committed version, of the size the round announced (FlService holds it in
   * memory until a main-chain entry names it: ModelStore.hold); the store checks the bytes.
   */
  storeModel(bytes: Uint8Array, paramCount: number, from: string): Hex | Promise<Hex>;
  readonly randomness?: RoundRandomness;
  /** Checks the coordinator's signature over the survivor set (default: its peer id's key). */
  readonly verifySurvivors?: SurvivorVerifier;
  /** Signs with this node's identity key: its key adverts (advert-signature.ts). */
  readonly sign: SurvivorSigner;
  /** Checks a roster member's signature over its advert (default: its peer id's key). */
  readonly verifyAdverts?: AdvertVerifier;
  /**
   * Whether a peer may be invited to train, where a membership view exists (roster networks:
   * trust.ts); every roster entry must. Absent on open networks, where anyone may train.
   */
  readonly mayTrain?: (peer: string) => boolean;
  /** Fewest distinct members a roster may name (default FL_DEFAULTS.minRosterMembers). */
  readonly minRoster?: number;
  /**
   * Roster members besides the coordinator this node assumes may collude with it (default
   * FL_DEFAULTS.collusionTolerance): the survivor-set confirmations it needs before revealing.
   */
  readonly collusionTolerance?: number;
  /** Rounds held at once; more are declined as busy (default MAX_HELD_ROUNDS). */
  readonly maxRounds?: number;
  readonly now?: () => number;
  /** Told of every declined announcement, with its reason (the service counts them). */
  readonly onDecline?: (reason: AnnounceDecline) => void;
}

interface RoundState {
  readonly coordinator: string;
  readonly announcement: Announcement;
  readonly global: Params;
  readonly data: Examples;
  readonly expiresAt: number;
  /** The keys request answered: the roster the adverts are signed for. Set once per round. */
  roster?: KeysRequest;
  /** From the keys step on; holds the roster id, threshold and roster size too. */
  secagg?: Participant;
  /** Set at the first shares request: a second one is refused, whatever became of the first. */
  sharesAsked?: boolean;
  /** This run's digest (advert-signature.ts runDigest), fixed at the shares step: confirmations sign it. */
  run?: Uint8Array;
  /** Set once a train request came: a second one must not charge the ledger again. */
  trainAsked?: boolean;
  /**
   * Set once this participant produced its masked update and handed it back: only then did the
   * round buy anything of its (commit, confirm). Set at the request, a train that failed at once
   * (no shares yet) let 4 ids' commits push an honest candidate out (attack review fl-trust3).
   */
  trained?: boolean;
  /** The one survivor set this participant signed in this round (the consistency step). */
  confirmed?: { readonly survivors: readonly number[]; readonly signature: Promise<Uint8Array> };
}

const sameSet = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((id, i) => id === b[i]);

/**
 * Round ids this participant took part in and forgot (committed, ended, expired), remembered so
 * a repeat announcement of one is declined as `duplicate`: a coordinator that reran a round id
 * replayed the first run's confirmations (the run digest refuses those on its own; this keeps a
 * rerun from costing anyone a ledger charge). Bounded in count, the oldest dropped first, and
 * in time: long past any round's state (MAX_DEADLINE_MS + grace).
 */
export const MAX_ENDED_ROUNDS = 1024;
export const ENDED_ROUND_MEMORY_MS = 3_600_000;

/** Committed models remembered until a main-chain entry names them (far more than rounds held). */
export const MAX_AWAITING_CHAIN = 64;

export class FlParticipant {
  private readonly rounds = new Map<Hex, RoundState>();
  /**
   * Announcements accepted so far but still resolving their model, by round id → announcer. They
   * hold their slot from before the await: counted only once inserted, announcements sent
   * together all passed the counts against the same map and one coordinator took every slot
   * (attack review fl-trust3, concurrent announcements).
   */
  private readonly pending = new Map<Hex, string>();
  /** Forgotten round ids → when they may be announced again (MAX_ENDED_ROUNDS, oldest first). */
  private readonly ended = new Map<Hex, number>();
  private readonly rnd: RoundRandomness;
  private readonly now: () => number;

  private readonly o: ParticipantOptions;
  constructor(o: ParticipantOptions) {
    this.o = o;
    this.rnd = o.randomness ?? cryptoRoundRandomness();
    this.now = o.now ?? Date.now;
  }

  /** Rounds in progress, expired ones not counted (for tests and status). */
  get active(): number {
    this.expire();
    return this.rounds.size;
  }

  async announce(from: string, a: Announcement): Promise<AnnounceReply> {
    this.expire();
    const decline = (code: AnnounceDecline, reason: string = code): AnnounceReply => {
      this.o.onDecline?.(code);
      return { accept: false, examples: 0, reason, epsilon: 0 };
    };
    if (this.o.decline) return decline('policy');
    const key = toHex(a.roundId);
    if (this.rounds.has(key) || this.pending.has(key)) return decline('duplicate', 'round already announced');
    if (this.ended.has(key)) return decline('duplicate', 'round already taken part in');
    const max = this.o.maxRounds ?? MAX_HELD_ROUNDS;
    // The announcer's own share first: a coordinator at it is declined whoever holds the rest.
    const share = coordinatorShare(max);
    let held = 0;
    for (const r of this.rounds.values()) if (r.coordinator === from) held++;
    for (const c of this.pending.values()) if (c === from) held++;
    if (held >= share)
      return decline(
        'busy-coordinator',
        `busy-coordinator: this coordinator holds ${held} of ${max} round slots`,
      );
    if (this.rounds.size + this.pending.size >= max) return decline('busy');
    const data = this.o.data();
    if (!data || data.rows.length === 0) return decline('no-data', 'no training data');
    if (data.dim + 1 !== a.paramCount)
      return decline('param-mismatch', `model has ${a.paramCount} parameters, data ${data.dim}`);
    // Privacy last among the checks that need no I/O: a decline for a reason above costs nothing.
    let epsilon = 0;
    if (this.o.privacy) {
      const d = this.o.privacy.decide(a.privacy, key, from);
      if (!d.ok) return decline('privacy', `${d.reason}: ${d.message}`);
      if (d.mode === 'record') epsilon = d.epsilonAfter;
    } else if (a.privacy.mode !== 'update') {
      return decline('privacy', 'ledger-unavailable: this participant keeps no privacy ledger');
    }
    // The slot is this announcement's from here; released whatever resolveModel does.
    this.pending.set(key, from);
    let global: Params;
    try {
      global = await this.o.resolveModel(a.modelHash, a.paramCount, from);
    } catch (err) {
      return decline('model-unavailable', `global model unavailable: ${(err as Error).message}`);
    } finally {
      this.pending.delete(key);
    }
    this.rounds.set(key, {
      coordinator: from,
      announcement: a,
      global,
      data,
      // A round that fails (or whose coordinator vanishes) before its commit is dropped then.
      expiresAt: this.now() + a.deadlineMs + ROUND_STATE_GRACE_MS,
    });
    return { accept: true, examples: data.rows.length, reason: '', epsilon };
  }

  /**
   * Fresh keys for the round and the advert signed by this node's identity key, once per round,
   * for a roster of at least the minimum of distinct members, every one a trainer where the
   * roster says who trains.
   */
  async keys(from: string, k: KeysRequest): Promise<Uint8Array> {
    const s = this.state(from, k.roundId);
    if (s.roster)
      throw new SecAggRefused('keys', 'asked-twice', 'protocol-violation', 'keys were already requested');
    this.checkRoster(k.participants);
    const pos = k.participants.indexOf(this.o.self);
    if (pos < 0) throw new SecAggError('unknown-participant', 'not on the roster');
    this.checkQuorumReachable(s.coordinator, k.participants, k.threshold);
    const secagg = createParticipant(
      {
        roundId: k.roundId,
        participants: k.participants.map((_, i) => i + 1),
        threshold: k.threshold,
        dim: layoutDim(s.global.length),
      },
      pos + 1,
      this.rnd.bytes,
    );
    // Before the await: a concurrent second request finds the round's keys taken.
    const roster: KeysRequest = {
      roundId: k.roundId,
      threshold: k.threshold,
      participants: [...k.participants],
    };
    s.roster = roster;
    s.secagg = secagg;
    const advert = encodeAdvertisement(secagg.advertisement);
    return encodeSignedAdvert(advert, await this.o.sign(advertSigningMessage(advert, roster)));
  }

  /**
   * Shamir-shares this round's secrets to the advertised members, once per round: a second set
   * of shares of the same secrets, encrypted to whatever keys the second request names, is what
   * lets a coordinator rebuild them (finding 1). Every advert must be signed by the member it
   * names, for the roster this participant was given (finding 2).
   */
  async shares(from: string, req: SharesRequest): Promise<Uint8Array[]> {
    const s = this.state(from, req.roundId);
    this.secagg(s);
    if (s.sharesAsked)
      throw new SecAggRefused('shares', 'asked-twice', 'protocol-violation', 'shares were already requested');
    // Before anything that can fail or wait: one request per round, whatever its outcome.
    s.sharesAsked = true;
    const roster = s.roster!;
    s.run = runDigest(roster, req.adverts);
    const verify = this.o.verifyAdverts ?? peerIdVerifier;
    const adverts = await Promise.all(
      req.adverts.map((b) =>
        openSignedAdvert(b, roster, verify).catch((err: unknown) => {
          if (err instanceof SecAggError && err.code === 'bad-signature')
            throw new SecAggRefused('shares', 'bad-advert-signature', 'bad-signature', err.message);
          throw err;
        }),
      ),
    );
    const { participant, shares } = shareKeys(this.secagg(s), adverts, this.rnd.bytes);
    s.secagg = participant;
    return shares.map(encodeShare);
  }

  private quorum(coordinator: string, roster: readonly string[], threshold: number) {
    const c = rosterMember(coordinator);
    const onRoster = roster.some((p) => rosterMember(p) === c);
    const need = confirmationQuorum(
      roster.length,
      onRoster,
      threshold,
      this.o.collusionTolerance ?? FL_DEFAULTS.collusionTolerance,
    );
    return { need, others: roster.length - (onRoster ? 1 : 0) };
  }

  /** A roster whose members besides the coordinator cannot reach the quorum is refused at once. */
  private checkQuorumReachable(coordinator: string, roster: readonly string[], threshold: number): void {
    const { need, others } = this.quorum(coordinator, roster, threshold);
    if (need.others > others)
      throw new SecAggRefused(
        'keys',
        'quorum-unreachable',
        'too-few-participants',
        `${others} members besides the coordinator, ${need.others} confirmations needed`,
      );
  }

  /** The roster rules of the keys step (SecAggRefused when one is broken). */
  private checkRoster(participants: readonly string[]): void {
    // Distinct members, not distinct strings: one key has several peer-id encodings.
    if (new Set(participants.map(rosterMember)).size !== participants.length)
      throw new SecAggRefused('keys', 'roster-repeats', 'duplicate', 'the roster names a member twice');
    const min = this.o.minRoster ?? FL_DEFAULTS.minRosterMembers;
    if (participants.length < min)
      throw new SecAggRefused(
        'keys',
        'roster-too-small',
        'too-few-participants',
        `a roster of ${participants.length}, at least ${min} distinct members needed`,
      );
    const mayTrain = this.o.mayTrain;
    const stranger = mayTrain ? participants.find((p) => !mayTrain(p)) : undefined;
    if (stranger !== undefined)
      throw new SecAggRefused(
        'keys',
        'not-a-trainer',
        'unknown-participant',
        `${stranger} does not hold train`,
      );
  }

  /**
   * Trains, clips, noises, quantises and masks: the only step that takes real time. In record
   * mode the round is charged to the ledger (and the ledger saved) before training starts.
   */
  async train(from: string, req: TrainRequest): Promise<Uint8Array> {
    const s = this.state(from, req.roundId);
    const sa = this.secagg(s);
    if (s.trainAsked) throw new SecAggError('protocol-violation', 'training was already requested');
    s.trainAsked = true;
    const expect = { roundId: req.roundId, participants: new Set(req.u2) };
    const inbox = req.inbox.map((b) => decodeShare(b, expect));
    s.secagg = receiveShares(sa, req.u2, inbox);
    const a = s.announcement;
    const { id, config } = s.secagg;
    const quantiser = roundQuantiser(a.dp, config.participants.length, config.threshold);
    let bytes: Uint8Array;
    if (a.privacy.mode === 'record') {
      const label = toHex(a.roundId);
      if (!this.o.privacy) throw new Error('no privacy ledger');
      try {
        await this.o.privacy.charge(a.privacy, label, s.coordinator);
      } catch (err) {
        // Accepted, but another round was charged since and this one no longer fits.
        if (err instanceof PrivacyBudgetError) this.o.privacy.noteDecline(err.reason, err.message, label);
        throw err;
      }
      const { vector } = recordContribution(s.global, s.data, a.privacy.sgd, a.dp, this.rnd);
      const q = quantise(vector, quantiser, this.rnd.uniform);
      bytes = encodeMasked(maskUpdate(s.secagg, q.words));
    } else {
      const cfg = { roundId: a.roundId, round: a.round, dp: a.dp, train: a.train };
      bytes = maskedContribution(
        s.secagg,
        s.global,
        { id, data: s.data },
        cfg,
        config.threshold,
        quantiser,
        this.rnd,
      ).bytes;
    }
    s.trained = true;
    return this.o.misbehave ? corruptMasked(bytes, this.o.misbehave) : bytes;
  }

  /**
   * The coordinator's own signature over U3 (canonical form, against the coordinator that
   * announced the round); UnmaskRefused('bad-signature') when it does not verify.
   */
  private async checkSurvivorSet(s: RoundState, req: ConfirmRequest): Promise<void> {
    if (!isCanonicalSet(req.survivors))
      throw new SecAggError('malformed', 'survivor ids must ascend, within 1..255');
    const verify = this.o.verifySurvivors ?? peerIdVerifier;
    const message = survivorSetMessage(req.roundId, req.survivors);
    const valid =
      req.signature.length === SURVIVOR_SIGNATURE_BYTES &&
      (await verify(s.coordinator, message, req.signature).catch(() => false));
    if (!valid)
      throw new UnmaskRefused('bad-signature', 'survivor set not signed by the round’s coordinator');
  }

  /**
   * The consistency step (survivor-set.ts): signs, with this node's identity key, the U3 the
   * coordinator named, once per round. The same set again gets the same signature (a retry);
   * another set is a protocol violation, as in the unmask step: a participant that signed two
   * sets would let the coordinator build a quorum for each.
   */
  async confirm(from: string, req: ConfirmRequest): Promise<Uint8Array> {
    const s = this.state(from, req.roundId);
    const sa = this.secagg(s);
    if (!sa.u2 || !s.trained) throw new SecAggError('protocol-violation', 'no masked update was produced');
    await this.checkSurvivorSet(s, req);
    // Read after the await: a concurrent request may have confirmed meanwhile.
    if (s.confirmed) {
      if (sameSet(s.confirmed.survivors, req.survivors)) return s.confirmed.signature;
      throw new UnmaskRefused(
        'second-survivor-set',
        `confirm asked again with another survivor set ({${req.survivors.join(',')}} after {${s.confirmed.survivors.join(',')}})`,
      );
    }
    this.checkSurvivorShape(this.secagg(s), req.survivors);
    const signature = this.o.sign(confirmationMessage(req.roundId, this.run(s), req.survivors));
    // Before the await: one set per round, whatever becomes of this signature.
    s.confirmed = { survivors: [...req.survivors], signature };
    return signature;
  }

  /** What every survivor set this participant answers for must be (minimum size, within U2). */
  private checkSurvivorShape(sa: Participant, survivors: readonly number[]): void {
    // The roster minimum holds for the sum too: a coordinator that declares all but one other
    // member dropped (itself, say: it knows its own update) would unmask the victim's alone.
    const min = this.o.minRoster ?? FL_DEFAULTS.minRosterMembers;
    if (survivors.length < min)
      throw new UnmaskRefused(
        'too-few-survivors',
        `a survivor set of ${survivors.length}, at least ${min} members needed`,
      );
    if (!survivors.includes(sa.id)) throw new SecAggError('protocol-violation', 'not a survivor');
    for (const v of survivors)
      if (!sa.u2!.includes(v)) throw new SecAggError('protocol-violation', `${v} is not in U2`);
    if (survivors.length < sa.config.threshold)
      throw new SecAggError('too-few-participants', `|U3| = ${survivors.length}`);
  }

  /**
   * Every relayed confirmation must be a survivor's valid signature over this very set (the
   * coordinator checks them before it relays; a bad one is its doing), and the valid ones must
   * reach the quorum: ≥ t, and more than half of the members other than the coordinator.
   */
  private async checkConfirmations(s: RoundState, req: UnmaskRequest): Promise<void> {
    const roster = s.roster!.participants;
    const coordinator = rosterMember(s.coordinator);
    const verify = this.o.verifyAdverts ?? peerIdVerifier;
    const message = confirmationMessage(req.roundId, this.run(s), req.survivors);
    const checked = await Promise.all(
      req.confirmations.map(async (c) => {
        const member = roster[c.id - 1];
        const ok =
          member !== undefined &&
          req.survivors.includes(c.id) &&
          c.signature.length === SURVIVOR_SIGNATURE_BYTES &&
          (await verify(member, message, c.signature).catch(() => false));
        return { id: c.id, ok, coordinator: member !== undefined && rosterMember(member) === coordinator };
      }),
    );
    const bad = checked.find((c) => !c.ok);
    if (bad)
      throw new UnmaskRefused(
        'bad-confirmation',
        `confirmation of ${bad.id} is no survivor’s signature over U3`,
      );
    const { need } = this.quorum(s.coordinator, roster, s.secagg!.config.threshold);
    const others = checked.filter((c) => !c.coordinator).length;
    if (checked.length < need.total || others < need.others)
      throw new UnmaskRefused(
        'too-few-confirmations',
        `${checked.length} confirmations (${others} not the coordinator’s), ${need.total} (${need.others}) needed`,
      );
  }

  /**
   * Reveals shares for the survivor set this participant confirmed, once per round (secagg/
   * protocol.ts revealOnce says why), and only once a quorum of survivors signed that same set
   * (checkConfirmations); UnmaskRefused when the request breaks either.
   */
  async unmask(from: string, req: UnmaskRequest): Promise<Uint8Array> {
    const s = this.state(from, req.roundId);
    this.secagg(s);
    await this.checkSurvivorSet(s, req);
    if (!s.confirmed) throw new UnmaskRefused('not-confirmed', 'no survivor set was confirmed in this round');
    if (!sameSet(s.confirmed.survivors, req.survivors))
      throw new UnmaskRefused(
        'second-survivor-set',
        `unmask asked for {${req.survivors.join(',')}}, confirmed {${s.confirmed.survivors.join(',')}}`,
      );
    await this.checkConfirmations(s, req);
    // Read again after the awaits: another request may have been answered meanwhile.
    const current = this.secagg(s);
    try {
      const { participant, message: shares } = revealOnce(current, req.survivors);
      s.secagg = participant;
      return encodeUnmask(shares);
    } catch (err) {
      if (err instanceof SecAggError && current.revealed)
        throw new UnmaskRefused('second-survivor-set', err.message);
      throw err;
    }
  }

  /**
   * The round's outcome: hand over the new version and forget the round. Bytes of another size
   * than the round's model are no version of it (DecodeError), and a round this participant never
   * trained in bought nothing of its (CommitRefused): nothing takes them. A round it was asked to
   * train in whose training failed here (a share that did not decrypt, a charge that did not
   * fit) ends as on fl-end, nothing stored (undefined): the honest runner commits to everyone
   * left out at train, and a third party's bad share must not make it look dishonest
   * (attack review fl-trust4, failed-train-commit-penalises-coordinator).
   */
  async commit(from: string, req: CommitRequest): Promise<Hex | undefined> {
    const s = this.state(from, req.roundId);
    const { paramCount } = s.announcement;
    this.forget(toHex(req.roundId));
    if (req.model.length !== modelBytesFor(paramCount))
      throw new DecodeError(
        'invalid-value',
        `committed model of ${req.model.length} bytes; the round's has ${modelBytesFor(paramCount)}`,
      );
    if (!s.trained && s.trainAsked) return undefined;
    if (!s.trained) throw new CommitRefused('commit of a round this participant did not train in');
    const hash = await this.o.storeModel(req.model, paramCount, from);
    // Its ε bought a version only once a main-chain model entry names it (modelOnChain): a commit
    // message alone cleared the round's uncommitted spend, so a coordinator whose rounds a
    // saboteur failed sent fake commits and drained every budget past the caps (ATK-16).
    this.awaitChain(hash, toHex(req.roundId));
    return hash;
  }

  /** Rounds whose committed model no main-chain entry has named yet, by model hash; bounded. */
  private readonly awaitingChain = new Map<Hex, Set<Hex>>();

  private awaitChain(hash: Hex, roundId: Hex): void {
    const rounds = this.awaitingChain.get(hash) ?? new Set<Hex>();
    rounds.add(roundId);
    this.awaitingChain.delete(hash);
    this.awaitingChain.set(hash, rounds);
    // Commits no entry ever names stay uncommitted spend; only their bookkeeping is dropped.
    while (this.awaitingChain.size > MAX_AWAITING_CHAIN)
      this.awaitingChain.delete(this.awaitingChain.keys().next().value!);
  }

  /**
   * A main-chain model entry names `hash`: the rounds committed to it bought a version, and their
   * ε stops counting as uncommitted (privacy-gate.ts, issue 16 finding 4).
   */
  async modelOnChain(hash: Hex): Promise<void> {
    const rounds = this.awaitingChain.get(hash);
    if (!rounds) return;
    this.awaitingChain.delete(hash);
    for (const roundId of rounds) await this.o.privacy?.committed(roundId);
  }

  /**
   * Its coordinator says the round failed: forget it now rather than at its expiry, so its place
   * is free for the next announcement. A round not held here (declined, expired) is no error: the
   * coordinator tells everyone it invited. The ledger keeps the round uncommitted.
   */
  end(from: string, req: { readonly roundId: Uint8Array }): boolean {
    this.expire();
    const key = toHex(req.roundId);
    if (!this.rounds.has(key)) return false;
    this.state(from, req.roundId);
    this.forget(key);
    return true;
  }

  /** Drops a round's state and remembers its id (MAX_ENDED_ROUNDS says why). */
  private forget(key: Hex): void {
    this.rounds.delete(key);
    this.ended.delete(key);
    this.ended.set(key, this.now() + ENDED_ROUND_MEMORY_MS);
    while (this.ended.size > MAX_ENDED_ROUNDS) this.ended.delete(this.ended.keys().next().value!);
  }

  private state(from: string, roundId: Uint8Array): RoundState {
    // An expired round is gone for every step, not only once the next announcement sweeps it.
    this.expire();
    const s = this.rounds.get(toHex(roundId));
    if (!s) throw new SecAggError('wrong-round', 'no such round here');
    // Only the node that announced the round may drive it.
    if (s.coordinator !== from) throw new SecAggError('protocol-violation', 'not the round’s coordinator');
    return s;
  }

  private run(s: RoundState): Uint8Array {
    if (!s.run) throw new SecAggError('protocol-violation', 'shares have not been exchanged');
    return s.run;
  }

  private secagg(s: RoundState): Participant {
    if (!s.secagg) throw new SecAggError('protocol-violation', 'keys have not been exchanged');
    return s.secagg;
  }

  private expire(): void {
    const now = this.now();
    for (const [k, s] of this.rounds) if (s.expiresAt < now) this.forget(k);
    // Insertion order is forget order, and every entry lives as long: the oldest expire first.
    for (const [k, at] of this.ended) {
      if (at >= now) break;
      this.ended.delete(k);
    }
  }
}

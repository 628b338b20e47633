/**
 * A node's participant side of a round: answers the coordinator's requests step by step,
 * holding the round's secure-aggregation state in between. No I/O of its own: the service hands
 * it requests with their authenticated sender and supplies the data slice and the models.
 */
import { type Hex, toHex } from '../../chain/bytes.ts';
import { DecodeError } from '../../chain/codec/errors.ts';
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
  decodeAdvertisement,
  decodeShare,
  encodeAdvertisement,
  encodeMasked,
  encodeShare,
  encodeUnmask,
  SecAggError,
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
import { modelBytesFor } from './model-codec.ts';
import type { PrivacyGate } from './privacy-gate.ts';
import {
  isCanonicalSet,
  peerIdVerifier,
  SURVIVOR_SIGNATURE_BYTES,
  type SurvivorVerifier,
  survivorSetMessage,
} from './survivor-set.ts';
import type {
  Announcement,
  AnnounceReply,
  CommitRequest,
  KeysRequest,
  SharesRequest,
  TrainRequest,
  UnmaskRequest,
} from './wire.ts';

export type UnmaskRefusal = 'bad-signature' | 'second-survivor-set';

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

/**
 * Rounds a participant holds at once; more announcements are declined as `busy`. Each holds the
 * global model (16 385 floats, ~131 kB) and secure-aggregation state, so a burst of rounds that
 * fail before their commit costs at most this many until they expire.
 */
export const MAX_HELD_ROUNDS = 4;
/** How long a round's state outlives its training deadline: room for the steps around training. */
export const ROUND_STATE_GRACE_MS = 60_000;

/**
 * Why a participant declines an announcement, as counted (cairn_fl_announce_declined_total); the
 * reason on the wire says more. `busy`: it holds MAX_HELD_ROUNDS rounds already.
 */
export const ANNOUNCE_DECLINES = [
  'policy',
  'duplicate',
  'busy',
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
  /** From the keys step on; holds the roster id, threshold and roster size too. */
  secagg?: Participant;
  /** Set once the round's training began: a second train request must not charge the ledger again. */
  trained?: boolean;
}

export class FlParticipant {
  private readonly rounds = new Map<Hex, RoundState>();
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
    if (this.rounds.has(key)) return decline('duplicate', 'round already announced');
    if (this.rounds.size >= (this.o.maxRounds ?? MAX_HELD_ROUNDS)) return decline('busy');
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
    let global: Params;
    try {
      global = await this.o.resolveModel(a.modelHash, a.paramCount, from);
    } catch (err) {
      return decline('model-unavailable', `global model unavailable: ${(err as Error).message}`);
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

  keys(from: string, k: KeysRequest): Uint8Array {
    const s = this.state(from, k.roundId);
    const pos = k.participants.indexOf(this.o.self);
    if (pos < 0) throw new SecAggError('unknown-participant', 'not on the roster');
    s.secagg = createParticipant(
      {
        roundId: k.roundId,
        participants: k.participants.map((_, i) => i + 1),
        threshold: k.threshold,
        dim: layoutDim(s.global.length),
      },
      pos + 1,
      this.rnd.bytes,
    );
    return encodeAdvertisement(s.secagg.advertisement);
  }

  shares(from: string, req: SharesRequest): Uint8Array[] {
    const s = this.state(from, req.roundId);
    const sa = this.secagg(s);
    const expect = { roundId: req.roundId, participants: new Set(sa.config.participants) };
    const adverts = req.adverts.map((b) => decodeAdvertisement(b, expect));
    const { participant, shares } = shareKeys(sa, adverts, this.rnd.bytes);
    s.secagg = participant;
    return shares.map(encodeShare);
  }

  /**
   * Trains, clips, noises, quantises and masks: the only step that takes real time. In record
   * mode the round is charged to the ledger (and the ledger saved) before training starts.
   */
  async train(from: string, req: TrainRequest): Promise<Uint8Array> {
    const s = this.state(from, req.roundId);
    const sa = this.secagg(s);
    if (s.trained) throw new SecAggError('protocol-violation', 'training was already requested');
    s.trained = true;
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
    return this.o.misbehave ? corruptMasked(bytes, this.o.misbehave) : bytes;
  }

  /**
   * Reveals shares for the survivor set the round's coordinator signed, once per round
   * (secagg/protocol.ts revealOnce says why); UnmaskRefused when the request breaks that.
   */
  async unmask(from: string, req: UnmaskRequest): Promise<Uint8Array> {
    const s = this.state(from, req.roundId);
    this.secagg(s);
    if (!isCanonicalSet(req.survivors))
      throw new SecAggError('malformed', 'survivor ids must ascend, within 1..255');
    const verify = this.o.verifySurvivors ?? peerIdVerifier;
    // Against the coordinator that announced the round (state() checked `from` is it).
    const message = survivorSetMessage(req.roundId, req.survivors);
    const valid =
      req.signature.length === SURVIVOR_SIGNATURE_BYTES &&
      (await verify(s.coordinator, message, req.signature).catch(() => false));
    if (!valid)
      throw new UnmaskRefused('bad-signature', 'survivor set not signed by the round’s coordinator');
    // Read again after the await: another request may have been answered meanwhile.
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
   * than the round's model are no version of it (DecodeError): nothing takes them.
   */
  async commit(from: string, req: CommitRequest): Promise<Hex> {
    const { paramCount } = this.state(from, req.roundId).announcement;
    this.rounds.delete(toHex(req.roundId));
    if (req.model.length !== modelBytesFor(paramCount))
      throw new DecodeError(
        'invalid-value',
        `committed model of ${req.model.length} bytes; the round's has ${modelBytesFor(paramCount)}`,
      );
    // The round reached its commit: its ε bought a version (privacy-gate.ts, issue 16 finding 4).
    await this.o.privacy?.committed(toHex(req.roundId));
    return this.o.storeModel(req.model, paramCount, from);
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
    return this.rounds.delete(key);
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

  private secagg(s: RoundState): Participant {
    if (!s.secagg) throw new SecAggError('protocol-violation', 'keys have not been exchanged');
    return s.secagg;
  }

  private expire(): void {
    const now = this.now();
    for (const [k, s] of this.rounds) if (s.expiresAt < now) this.rounds.delete(k);
  }
}

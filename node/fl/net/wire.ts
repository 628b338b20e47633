/**
 * Wire formats of the round protocol between a coordinator and its participants. Control
 * messages use the chain's canonical Writer/Reader (big-endian, LEB128 counts) and every count
 * and length is bounded before it is read; the secure-aggregation messages inside travel as the
 * opaque, separately checked encodings of secagg/messages.ts.
 */

import { DecodeError } from '../../chain/codec/errors.ts';
import { Reader } from '../../chain/codec/reader.ts';
import { Writer } from '../../chain/codec/writer.ts';
import { MAX_DP_SGD_STEPS } from '../dp-sgd.ts';
import type { DpConfig } from '../local-round.ts';
import type { TrainOptions } from '../logistic.ts';
import type { RecordDp } from '../record-contribution.ts';
import { MAX_PARTICIPANTS, SHARE_BYTES } from '../secagg/messages.ts';
import { SIGNED_ADVERT_BYTES } from './advert-signature.ts';
import { MAX_PARAMS } from './model-codec.ts';
import { isCanonicalSet, SURVIVOR_SIGNATURE_BYTES, type SurvivorConfirmation } from './survivor-set.ts';

const MAX_PEER_ID = 128;
const MAX_REASON = 256;
/**
 * Upper bound of a round's training deadline (announcements beyond it are refused); also the
 * `fl-train` request timeout, while the coordinator's own request deadline is shorter.
 */
export const MAX_DEADLINE_MS = 600_000;

/**
 * The DP mode of a round. `record`: every participant runs DP-SGD on its own examples and charges
 * its ledger (each email protected). `update`: participants clip and noise whole updates (`dp`),
 * which protects a participant's update as a whole, not its records — kept, and labelled as such.
 * `unknown`: a mode this version cannot read (a newer coordinator); participants decline it.
 */
export type { RecordDp };
export type RoundPrivacy =
  | { readonly mode: 'update' }
  | { readonly mode: 'record'; readonly sgd: RecordDp }
  | { readonly mode: 'unknown'; readonly code: number };

export { DP_MODES, type DpMode } from '../dp-mode.ts';

const MODE_CODE = { update: 0, record: 1 } as const;
/** Mode parameters travel length-prefixed, so a mode this version does not know can be skipped. */
const MAX_MODE_BYTES = 1024;

/** The invitation: everything a participant needs to decide and to train, but not yet the roster. */
export interface Announcement {
  readonly roundId: Uint8Array;
  /** Round number of the version this round produces (parent's + 1). */
  readonly round: number;
  /** The global model to start from; null = the all-zero initial model. */
  readonly modelHash: Uint8Array | null;
  readonly paramCount: number;
  readonly dp: DpConfig;
  readonly train: TrainOptions;
  /** How long the coordinator waits for the masked update once it asks for it. */
  readonly deadlineMs: number;
  readonly privacy: RoundPrivacy;
}

export interface AnnounceReply {
  readonly accept: boolean;
  /** Examples the participant trains on (0 when it declines). */
  readonly examples: number;
  readonly reason: string;
  /**
   * Record mode: the ε (at the participant's δ) it will have spent in all once this round is
   * charged, so the version's ε can be the largest of its participants'. 0 otherwise.
   */
  readonly epsilon: number;
}

/** The roster: participant ids are positions in `participants` plus one (the Shamir points). */
export interface KeysRequest {
  readonly roundId: Uint8Array;
  readonly threshold: number;
  readonly participants: readonly string[];
}

export interface SharesRequest {
  readonly roundId: Uint8Array;
  /** Signed key advertisements (advert-signature.ts) of everyone who advertised (U1). */
  readonly adverts: readonly Uint8Array[];
}

export interface TrainRequest {
  readonly roundId: Uint8Array;
  readonly u2: readonly number[];
  /** Encoded shares addressed to this participant. */
  readonly inbox: readonly Uint8Array[];
}

/** The consistency step (survivor-set.ts): the coordinator names U3; the survivor signs it back. */
export interface ConfirmRequest {
  readonly roundId: Uint8Array;
  /** U3, ascending. */
  readonly survivors: readonly number[];
  /** The coordinator's identity-key signature over survivorSetMessage(roundId, survivors). */
  readonly signature: Uint8Array;
}

export interface UnmaskRequest extends ConfirmRequest {
  /** Survivors' signatures over confirmationMessage(roundId, survivors), ids ascending. */
  readonly confirmations: readonly SurvivorConfirmation[];
}

export interface CommitRequest {
  readonly roundId: Uint8Array;
  /** The new model version, canonically encoded (its hash is its name). */
  readonly model: Uint8Array;
}

const ZERO32 = new Uint8Array(32);

function writeDp(w: Writer, dp: DpConfig): void {
  w.f64(dp.clipNorm).f64(dp.noiseMultiplier).f64(dp.weightCap);
  if (!dp.adaptive) w.u8(0);
  else w.u8(1).f64(dp.adaptive.targetQuantile).f64(dp.adaptive.learningRate).f64(dp.adaptive.countNoiseStd);
}

function readDp(r: Reader): DpConfig {
  const clipNorm = r.f64('clip norm');
  const noiseMultiplier = r.f64('noise multiplier');
  const weightCap = r.f64('weight cap');
  if (!(clipNorm > 0) || !(noiseMultiplier >= 0) || !(weightCap > 0))
    throw new DecodeError('invalid-value', 'DP parameters out of range');
  const flag = r.u8('adaptive flag');
  if (flag > 1) throw new DecodeError('invalid-value', 'adaptive flag');
  if (flag === 0) return { clipNorm, noiseMultiplier, weightCap };
  const targetQuantile = r.f64('target quantile');
  const learningRate = r.f64('clip learning rate');
  const countNoiseStd = r.f64('count noise');
  if (!(targetQuantile >= 0 && targetQuantile <= 1) || !(learningRate >= 0) || !(countNoiseStd >= 0))
    throw new DecodeError('invalid-value', 'adaptive clipping parameters out of range');
  return { clipNorm, noiseMultiplier, weightCap, adaptive: { targetQuantile, learningRate, countNoiseStd } };
}

export function encodeAnnouncement(a: Announcement): Uint8Array {
  const w = new Writer(256)
    .fixed(a.roundId, 32)
    .u32(a.round)
    .fixed(a.modelHash ?? ZERO32, 32);
  w.u32(a.paramCount);
  writeDp(w, a.dp);
  const t = a.train;
  w.u32(t.epochs)
    .u32(t.batchSize)
    .f64(t.learningRate)
    .f64(t.l2)
    .u32(t.seed >>> 0)
    .u32(a.deadlineMs);
  writePrivacy(w, a.privacy);
  return w.finish();
}

function writePrivacy(w: Writer, p: RoundPrivacy): void {
  if (p.mode === 'unknown') throw new RangeError('cannot announce an unknown DP mode');
  w.u8(MODE_CODE[p.mode]);
  const body = new Writer(64);
  if (p.mode === 'record') {
    const s = p.sgd;
    body
      .f64(s.samplingRate)
      .f64(s.noiseMultiplier)
      .f64(s.clipNorm)
      .u32(s.steps)
      .f64(s.learningRate)
      .f64(s.l2)
      .f64(s.biasScale);
  }
  w.bytes(body.finish());
}

function readPrivacy(r: Reader): RoundPrivacy {
  const code = r.u8('DP mode');
  const body = r.bytes(MAX_MODE_BYTES, 'DP mode parameters');
  if (code === MODE_CODE.update) {
    if (body.length !== 0) throw new DecodeError('invalid-value', 'update mode takes no parameters');
    return { mode: 'update' };
  }
  if (code !== MODE_CODE.record) return { mode: 'unknown', code };
  const b = new Reader(body);
  const sgd: RecordDp = {
    samplingRate: b.f64('sampling rate'),
    noiseMultiplier: b.f64('noise multiplier'),
    clipNorm: b.f64('clip norm'),
    steps: b.u32('steps'),
    learningRate: b.f64('learning rate'),
    l2: b.f64('l2'),
    biasScale: b.f64('bias scale'),
  };
  b.end('record-level DP parameters');
  // Shape only: whether the values are acceptable is the participant's ledger's call (floors).
  const fin = (x: number) => Number.isFinite(x);
  if (
    !(sgd.samplingRate > 0 && sgd.samplingRate <= 1) ||
    !(fin(sgd.noiseMultiplier) && sgd.noiseMultiplier >= 0) ||
    !(fin(sgd.clipNorm) && sgd.clipNorm > 0) ||
    sgd.steps < 1 ||
    sgd.steps > MAX_DP_SGD_STEPS ||
    !(fin(sgd.learningRate) && sgd.learningRate > 0) ||
    !(fin(sgd.l2) && sgd.l2 >= 0) ||
    !(fin(sgd.biasScale) && sgd.biasScale > 0)
  )
    throw new DecodeError('invalid-value', 'record-level DP parameters out of range');
  return { mode: 'record', sgd };
}

export function decodeAnnouncement(bytes: Uint8Array): Announcement {
  const r = new Reader(bytes);
  const roundId = r.fixed(32, 'round id');
  const round = r.u32('round');
  const hash = r.fixed(32, 'model hash');
  const paramCount = r.u32('parameter count');
  if (paramCount < 1 || paramCount > MAX_PARAMS) throw new DecodeError('invalid-value', 'parameter count');
  const dp = readDp(r);
  const epochs = r.u32('epochs');
  const batchSize = r.u32('batch size');
  const learningRate = r.f64('learning rate');
  const l2 = r.f64('l2');
  const seed = r.u32('seed');
  const deadlineMs = r.u32('deadline');
  const privacy = readPrivacy(r);
  r.end('announcement');
  // Bounds that keep one round's local training within reason on a small device.
  if (epochs > 50 || batchSize < 1 || batchSize > 100_000 || !(learningRate > 0) || !(l2 >= 0))
    throw new DecodeError('invalid-value', 'training options out of range');
  if (deadlineMs < 100 || deadlineMs > MAX_DEADLINE_MS)
    throw new DecodeError('invalid-value', 'deadline out of range');
  return {
    roundId,
    round,
    modelHash: hash.every((b) => b === 0) ? null : hash,
    paramCount,
    dp,
    train: { epochs, batchSize, learningRate, l2, seed },
    deadlineMs,
    privacy,
  };
}

export function encodeAnnounceReply(a: AnnounceReply): Uint8Array {
  return new Writer(64)
    .u8(a.accept ? 1 : 0)
    .u32(a.examples)
    .string(a.reason.slice(0, MAX_REASON))
    .f64(a.epsilon)
    .finish();
}

export function decodeAnnounceReply(bytes: Uint8Array): AnnounceReply {
  const r = new Reader(bytes);
  const flag = r.u8('accept');
  if (flag > 1) throw new DecodeError('invalid-value', 'accept flag');
  const examples = r.u32('examples');
  const reason = r.string(MAX_REASON * 4, 'reason');
  const epsilon = r.f64('epsilon');
  r.end('announce reply');
  if (!(epsilon >= 0)) throw new DecodeError('invalid-value', 'epsilon');
  return { accept: flag === 1, examples, reason, epsilon };
}

export function encodeKeysRequest(k: KeysRequest): Uint8Array {
  const w = new Writer(64 + 60 * k.participants.length).fixed(k.roundId, 32).u8(k.threshold);
  w.varint(k.participants.length);
  for (const p of k.participants) w.string(p);
  return w.finish();
}

export function decodeKeysRequest(bytes: Uint8Array): KeysRequest {
  const r = new Reader(bytes);
  const roundId = r.fixed(32, 'round id');
  const threshold = r.u8('threshold');
  const n = r.varint(MAX_PARTICIPANTS, 'participant count');
  const participants: string[] = [];
  for (let i = 0; i < n; i++) participants.push(r.string(MAX_PEER_ID, 'peer id'));
  r.end('keys request');
  if (new Set(participants).size !== n) throw new DecodeError('invalid-value', 'participants repeat');
  return { roundId, threshold, participants };
}

/** A list of byte strings of a fixed length each, e.g. adverts or shares. */
function writeList(w: Writer, items: readonly Uint8Array[]): Writer {
  w.varint(items.length);
  for (const b of items) w.bytes(b);
  return w;
}

function readList(r: Reader, max: number, itemBytes: number, what: string): Uint8Array[] {
  const n = r.varint(max, `${what} count`);
  const out: Uint8Array[] = [];
  // Items are checked for exact size by the secagg decoders; here only bounded.
  for (let i = 0; i < n; i++) out.push(r.bytes(itemBytes, what));
  return out;
}

const readIds = (r: Reader, what: string): number[] => {
  const n = r.varint(MAX_PARTICIPANTS, `${what} count`);
  const ids: number[] = [];
  for (let i = 0; i < n; i++) ids.push(r.u8(what));
  if (new Set(ids).size !== n || ids.some((id) => id < 1)) throw new DecodeError('invalid-value', what);
  return ids;
};
const writeIds = (w: Writer, ids: readonly number[]) => {
  w.varint(ids.length);
  for (const id of ids) w.u8(id);
};

export function encodeSharesRequest(s: SharesRequest): Uint8Array {
  return writeList(
    new Writer(64 + (SIGNED_ADVERT_BYTES + 2) * s.adverts.length).fixed(s.roundId, 32),
    s.adverts,
  ).finish();
}

export function decodeSharesRequest(bytes: Uint8Array): SharesRequest {
  const r = new Reader(bytes);
  const roundId = r.fixed(32, 'round id');
  const adverts = readList(r, MAX_PARTICIPANTS, SIGNED_ADVERT_BYTES, 'advertisement');
  r.end('shares request');
  return { roundId, adverts };
}

export const encodeShareList = (shares: readonly Uint8Array[]): Uint8Array =>
  writeList(new Writer(8 + (SHARE_BYTES + 2) * shares.length), shares).finish();

export function decodeShareList(bytes: Uint8Array): Uint8Array[] {
  const r = new Reader(bytes);
  const out = readList(r, MAX_PARTICIPANTS, SHARE_BYTES, 'share');
  r.end('share list');
  return out;
}

export function encodeTrainRequest(t: TrainRequest): Uint8Array {
  const w = new Writer(64 + (SHARE_BYTES + 2) * t.inbox.length).fixed(t.roundId, 32);
  writeIds(w, t.u2);
  return writeList(w, t.inbox).finish();
}

export function decodeTrainRequest(bytes: Uint8Array): TrainRequest {
  const r = new Reader(bytes);
  const roundId = r.fixed(32, 'round id');
  const u2 = readIds(r, 'U2');
  const inbox = readList(r, MAX_PARTICIPANTS, SHARE_BYTES, 'share');
  r.end('train request');
  return { roundId, u2, inbox };
}

function writeConfirm(w: Writer, c: ConfirmRequest): Writer {
  w.fixed(c.roundId, 32);
  writeIds(w, c.survivors);
  return w.fixed(c.signature, SURVIVOR_SIGNATURE_BYTES);
}

function readConfirm(r: Reader): ConfirmRequest {
  const roundId = r.fixed(32, 'round id');
  const survivors = readIds(r, 'survivors');
  const signature = r.fixed(SURVIVOR_SIGNATURE_BYTES, 'survivor set signature');
  return { roundId, survivors, signature };
}

export const encodeConfirmRequest = (c: ConfirmRequest): Uint8Array =>
  writeConfirm(new Writer(64 + c.survivors.length + SURVIVOR_SIGNATURE_BYTES), c).finish();

export function decodeConfirmRequest(bytes: Uint8Array): ConfirmRequest {
  const r = new Reader(bytes);
  const c = readConfirm(r);
  r.end('confirm request');
  return c;
}

/** The confirm answer: the survivor's 64-byte signature, exactly. */
export function decodeConfirmation(bytes: Uint8Array): Uint8Array {
  if (bytes.length !== SURVIVOR_SIGNATURE_BYTES)
    throw new DecodeError('invalid-value', `a confirmation is ${SURVIVOR_SIGNATURE_BYTES} bytes`);
  return bytes;
}

/** Bytes of an unmask request with `survivors` ids and as many confirmations, at most. */
export const unmaskRequestBytes = (survivors: number) =>
  32 + 2 + survivors + SURVIVOR_SIGNATURE_BYTES + 2 + survivors * (1 + SURVIVOR_SIGNATURE_BYTES);

export function encodeUnmaskRequest(u: UnmaskRequest): Uint8Array {
  const w = writeConfirm(new Writer(unmaskRequestBytes(u.survivors.length)), u);
  w.varint(u.confirmations.length);
  for (const c of u.confirmations) w.u8(c.id).fixed(c.signature, SURVIVOR_SIGNATURE_BYTES);
  return w.finish();
}

export function decodeUnmaskRequest(bytes: Uint8Array): UnmaskRequest {
  const r = new Reader(bytes);
  const c = readConfirm(r);
  const n = r.varint(MAX_PARTICIPANTS, 'confirmation count');
  const confirmations: SurvivorConfirmation[] = [];
  for (let i = 0; i < n; i++)
    confirmations.push({
      id: r.u8('confirmer'),
      signature: r.fixed(SURVIVOR_SIGNATURE_BYTES, 'confirmation'),
    });
  r.end('unmask request');
  // One canonical form: confirmers ascending, no repeats (a repeat cannot count twice).
  if (!isCanonicalSet(confirmations.map((x) => x.id)))
    throw new DecodeError('invalid-value', 'confirmers must ascend, within 1..255');
  return { ...c, confirmations };
}

export function encodeCommitRequest(c: CommitRequest): Uint8Array {
  const out = new Uint8Array(32 + c.model.length);
  out.set(c.roundId);
  out.set(c.model, 32);
  return out;
}

export function decodeCommitRequest(bytes: Uint8Array): CommitRequest {
  if (bytes.length < 33) throw new DecodeError('truncated', 'commit request');
  return { roundId: bytes.slice(0, 32), model: bytes.subarray(32) };
}

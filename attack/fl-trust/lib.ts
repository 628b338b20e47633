/**
 * Attack harness for issue #16 (attack review): real FlParticipants with real PrivacyGates (ledgers
 * on disk in a tmp dir) on real corpus slices, driven by a hostile coordinator written here against
 * the participant's request handlers (the same calls FlService's reqresp handlers make).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { x25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { Registry } from 'prom-client';
import { bytesEqual } from '../../node/chain/bytes.ts';
import { featurisedCorpus, splitIndices, subset } from '../../node/fl/dataset.ts';
import { planDpSgd } from '../../node/fl/dp-sgd-fedavg.ts';
import { layoutDim } from '../../node/fl/local-round.ts';
import { zeroParams } from '../../node/fl/logistic.ts';
import { createFlMetrics } from '../../node/fl/net/metrics.ts';
import { FlParticipant } from '../../node/fl/net/participant.ts';
import { PrivacyGate } from '../../node/fl/net/privacy-gate.ts';
import { survivorSetMessage } from '../../node/fl/net/survivor-set.ts';
import type { Announcement, RecordDp } from '../../node/fl/net/wire.ts';
import { recordSecAggDp } from '../../node/fl/record-contribution.ts';
import { routeShares, unmaskSum } from '../../node/fl/secagg/aggregator.ts';
import {
  decodeAdvertisement,
  decodeMasked,
  decodeShare,
  decodeUnmask,
  encodeAdvertisement,
  encodeShare,
  type KeyAdvertisement,
  type MaskedUpdate,
} from '../../node/fl/secagg/messages.ts';
import {
  createParticipant,
  type Delivered,
  pairwiseSeed,
  receiveShares,
  type SecAggConfig,
  shareKeys,
} from '../../node/fl/secagg/protocol.ts';
import { addInto, expandMask, subInto } from '../../node/fl/secagg/ring.ts';
import { combineShares } from '../../node/fl/secagg/shamir.ts';
import { createLogger } from '../../node/log.ts';
import { FL_DEFAULTS } from '../../node/options.ts';
import { survivorKeys } from '../../node/testing/survivor-keys.ts';

export const log = createLogger('silent');
export const COORD = 'boss';

const dirs: string[] = [];
export const cleanup = () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
export async function tmp(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'attack16-'));
  dirs.push(d);
  return d;
}

export const plan = planDpSgd(FL_DEFAULTS.privacy.budgetEpsilon, FL_DEFAULTS.privacy.delta);
export const defaultSgd: RecordDp = {
  samplingRate: plan.samplingRate,
  noiseMultiplier: plan.noiseMultiplier,
  clipNorm: plan.clipNorm,
  steps: plan.steps,
  learningRate: plan.learningRate,
  l2: plan.l2,
  biasScale: plan.biasScale ?? 1,
};

let corpus: ReturnType<typeof loadCorpus> | undefined;
function loadCorpus() {
  const ex = featurisedCorpus();
  const split = splitIndices(ex.labels, { seed: 42, testFraction: 0.2, nodes: 4, mode: 'iid' });
  return { ex, split };
}
export const data = () => (corpus ??= loadCorpus());

export async function gate(dataDir?: string): Promise<PrivacyGate> {
  const registry = new Registry();
  const g = new PrivacyGate({
    dataDir: dataDir ?? (await tmp()),
    mode: 'record',
    declined: createFlMetrics(registry).declined,
    log,
  });
  await g.load();
  return g;
}

export type Keys = Awaited<ReturnType<typeof survivorKeys>>;
export const coordinatorKeys = survivorKeys;

export interface Node {
  readonly name: string;
  readonly p: FlParticipant;
  readonly g: PrivacyGate;
  readonly stored: Uint8Array[];
}

export async function participants(
  n: number,
  keys: Keys,
  opts: { misbehave?: 'out-of-range'; now?: () => number } = {},
) {
  const { ex, split } = data();
  const out: Node[] = [];
  for (let k = 0; k < n; k++) {
    const g = await gate();
    const stored: Uint8Array[] = [];
    const name = `p${k + 1}`;
    const p = new FlParticipant({
      self: name,
      data: () => subset(ex, split.slices[k]!),
      privacy: g,
      resolveModel: async (_h, count) => zeroParams(count - 1),
      storeModel: async (b) => {
        stored.push(b);
        return 'stored';
      },
      verifySurvivors: keys.verify,
      ...(opts.now ? { now: opts.now } : {}),
      ...(k === n - 1 && opts.misbehave ? { misbehave: opts.misbehave } : {}),
    });
    out.push({ name, p, g, stored });
  }
  return out;
}

export function announcement(roundId: Uint8Array, over: Partial<RecordDp> = {}): Announcement {
  const { ex } = data();
  return {
    roundId,
    round: 1,
    modelHash: null,
    paramCount: ex.dim + 1,
    dp: recordSecAggDp(FL_DEFAULTS.recordUpdateClipNorm),
    train: { epochs: 1, batchSize: 16, learningRate: 8, l2: 0, seed: 5 },
    deadlineMs: 30_000,
    privacy: { mode: 'record', sgd: { ...defaultSgd, ...over } },
  };
}

/** An honest run of every step up to and including the masked updates; returns the round's state. */
export async function runToMasked(
  nodes: readonly Node[],
  roundId: Uint8Array,
  over: Partial<RecordDp> = {},
  trainMs: number[] = [],
) {
  const a = announcement(roundId, over);
  for (const n of nodes) {
    const r = await n.p.announce(COORD, a);
    if (!r.accept) throw new Error(`${n.name} declined: ${r.reason}`);
  }
  const roster = nodes.map((n) => n.name);
  const threshold = Math.floor(nodes.length / 2) + 1;
  const sa: SecAggConfig = {
    roundId,
    participants: roster.map((_, i) => i + 1),
    threshold,
    dim: layoutDim(a.paramCount),
  };
  const expect = { roundId, participants: new Set(sa.participants) };
  const advertBytes = nodes.map((n) => n.p.keys(COORD, { roundId, threshold, participants: roster }));
  const adverts = advertBytes.map((b) => decodeAdvertisement(b, expect));
  const shareMessages: Delivered[] = [];
  nodes.forEach((n, i) => {
    for (const bytes of n.p.shares(COORD, { roundId, adverts: advertBytes }))
      shareMessages.push({ from: i + 1, bytes });
  });
  const routed = routeShares(sa, sa.participants, shareMessages);
  const masked: MaskedUpdate[] = [];
  for (const [i, n] of nodes.entries()) {
    const t0 = performance.now();
    const bytes = await n.p.train(COORD, {
      roundId,
      u2: routed.u2,
      inbox: routed.inbox.get(i + 1)!.map(encodeShare),
    });
    trainMs.push(performance.now() - t0);
    masked.push(decodeMasked(bytes, { ...expect, dim: sa.dim }));
  }
  return { a, sa, expect, advertBytes, adverts, routed, masked };
}

export type RoundState = Awaited<ReturnType<typeof runToMasked>>;

/** The honest unmask step: every survivor reveals for U3 = everyone; returns the ring sum. */
export async function honestUnmask(nodes: readonly Node[], s: RoundState, keys: Keys): Promise<Uint32Array> {
  const survivors = s.sa.participants;
  const signature = await keys.sign(survivorSetMessage(s.sa.roundId, survivors));
  const reveals = [];
  for (const n of nodes) {
    const bytes = await n.p.unmask(COORD, { roundId: s.sa.roundId, survivors, signature });
    reveals.push(decodeUnmask(bytes, { roundId: s.sa.roundId, participants: new Set(s.routed.u2) }));
  }
  return unmaskSum(s.sa, s.adverts, s.masked, reveals);
}

/**
 * The re-share attack on participant `victimId` (1-based): a second `fl-shares` request whose
 * adverts for everyone else carry key pairs the coordinator made. The victim Shamir-shares its
 * mask key and self-mask seed again, encrypted to those keys; the coordinator decrypts t of them,
 * rebuilds both secrets and strips every mask off the victim's masked update.
 */
export function reshareAttack(victim: Node, victimId: number, s: RoundState, seed = 99): Uint32Array {
  const { sa } = s;
  let ctr = seed;
  const rand = (k: number) => {
    const out = new Uint8Array(sha256(new Uint8Array([ctr & 255, (ctr >> 8) & 255, 7, 7])));
    ctr++;
    return out.slice(0, k);
  };
  const realVictimAdvert = s.adverts[victimId - 1]!;
  const forged = sa.participants.filter((id) => id !== victimId).map((id) => createParticipant(sa, id, rand));
  const advertList: KeyAdvertisement[] = sa.participants.map((id) =>
    id === victimId ? realVictimAdvert : forged.find((f) => f.id === id)!.advertisement,
  );
  const shareBytes = victim.p.shares(COORD, {
    roundId: sa.roundId,
    adverts: advertList.map(encodeAdvertisement),
  });
  const maskShares: { x: number; y: Uint8Array }[] = [];
  const selfShares: { x: number; y: Uint8Array }[] = [];
  for (const b of shareBytes) {
    const share = decodeShare(b, s.expect);
    const f = forged.find((p) => p.id === share.to)!;
    const withRoster = shareKeys(f, advertList, rand).participant;
    const got = receiveShares(withRoster, [victimId, f.id], [share]);
    const h = got.held!.get(victimId)!;
    maskShares.push({ x: f.id, y: h.mask });
    selfShares.push({ x: f.id, y: h.self });
  }
  const maskSecret = combineShares(maskShares, sa.threshold);
  const selfSeed = combineShares(selfShares, sa.threshold);
  if (!bytesEqual(x25519.getPublicKey(maskSecret), realVictimAdvert.maskPublic))
    throw new Error('mask key not rebuilt');
  if (!bytesEqual(sha256(selfSeed), realVictimAdvert.selfMaskCommitment))
    throw new Error('self seed not rebuilt');
  const x = Uint32Array.from(s.masked.find((m) => m.from === victimId)!.masked);
  subInto(x, expandMask(selfSeed, sa.dim));
  for (const w of s.routed.u2) {
    if (w === victimId) continue;
    const mask = expandMask(
      pairwiseSeed(sa.roundId, maskSecret, s.adverts[w - 1]!.maskPublic, victimId, w),
      sa.dim,
    );
    // maskUpdate added PRG(s_uw) for w > u and subtracted it for w < u.
    if (w > victimId) subInto(x, mask);
    else addInto(x, mask);
  }
  return x;
}

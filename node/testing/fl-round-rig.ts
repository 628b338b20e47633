/**
 * A round rig for FL trust tests (issue 16's attack review): real FlParticipants with real
 * PrivacyGates (ledgers on disk in a tmp dir) on real corpus slices, each named by the peer id of
 * its own Ed25519 identity key, which signs its key adverts (so the production verifiers, the key
 * in the peer id, check them), driven step by step by a coordinator the test plays (the
 * same calls FlService's reqresp handlers make). `runToMasked` is an honest coordinator up to the
 * masked updates; a test then does what a hostile one would.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { Registry } from 'prom-client';
import { featurisedCorpus, splitIndices, subset } from '../fl/dataset.ts';
import { planDpSgd } from '../fl/dp-sgd-fedavg.ts';
import { layoutDim } from '../fl/local-round.ts';
import { zeroParams } from '../fl/logistic.ts';
import { decodeSignedAdvert } from '../fl/net/advert-signature.ts';
import { createFlMetrics } from '../fl/net/metrics.ts';
import { FlParticipant } from '../fl/net/participant.ts';
import { PrivacyGate } from '../fl/net/privacy-gate.ts';
import { type SurvivorConfirmation, survivorSetMessage } from '../fl/net/survivor-set.ts';
import type { Announcement, RecordDp, UnmaskRequest } from '../fl/net/wire.ts';
import { recordSecAggDp } from '../fl/record-contribution.ts';
import { routeShares, unmaskSum } from '../fl/secagg/aggregator.ts';
import { decodeMasked, decodeUnmask, encodeShare, type MaskedUpdate } from '../fl/secagg/messages.ts';
import type { Delivered, SecAggConfig } from '../fl/secagg/protocol.ts';
import { createLogger } from '../log.ts';
import { FL_DEFAULTS } from '../options.ts';
import { survivorKeys } from './survivor-keys.ts';

export const log = createLogger('silent');
export const COORD = 'boss';

const dirs: string[] = [];
export const cleanup = () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
export async function tmp(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'fl-rig-'));
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
/** The coordinator's key for survivor sets (it verifies whatever id it is given). */
export const coordinatorKeys = survivorKeys;

export interface Node {
  /** The participant's peer id. */
  readonly name: string;
  readonly p: FlParticipant;
  readonly g: PrivacyGate;
  readonly stored: Uint8Array[];
}

export async function participants(
  n: number,
  keys: Keys,
  opts: { misbehave?: 'out-of-range'; now?: () => number; collusionTolerance?: number } = {},
) {
  const { ex, split } = data();
  const out: Node[] = [];
  for (let k = 0; k < n; k++) {
    const g = await gate();
    const stored: Uint8Array[] = [];
    const key = await generateKeyPair('Ed25519');
    const name = peerIdFromPrivateKey(key).toString();
    const p = new FlParticipant({
      self: name,
      data: () => subset(ex, split.slices[k % split.slices.length]!),
      privacy: g,
      resolveModel: async (_h, count) => zeroParams(count - 1),
      storeModel: async (b) => {
        stored.push(b);
        return 'stored';
      },
      verifySurvivors: keys.verify,
      sign: async (m) => key.sign(m),
      ...(opts.now ? { now: opts.now } : {}),
      ...(opts.collusionTolerance !== undefined ? { collusionTolerance: opts.collusionTolerance } : {}),
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
  const advertBytes = await Promise.all(
    nodes.map((n) => n.p.keys(COORD, { roundId, threshold, participants: roster })),
  );
  const adverts = advertBytes.map((b) => decodeSignedAdvert(b, expect).advert);
  const shareMessages: Delivered[] = [];
  for (const [i, n] of nodes.entries())
    for (const bytes of await n.p.shares(COORD, { roundId, adverts: advertBytes }))
      shareMessages.push({ from: i + 1, bytes });
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
  return { a, sa, expect, roster, advertBytes, adverts, routed, masked };
}

export type RoundState = Awaited<ReturnType<typeof runToMasked>>;

/**
 * The consistency step as an honest coordinator runs it: U3 signed by `keys`, shown to every
 * node, each node's confirmation collected; returns the unmask request to send.
 */
export async function confirmed(
  nodes: readonly { readonly p: FlParticipant }[],
  roundId: Uint8Array,
  survivors: readonly number[],
  keys: Pick<Keys, 'sign'>,
  coordinator: string = COORD,
): Promise<UnmaskRequest> {
  const signature = await keys.sign(survivorSetMessage(roundId, survivors));
  const named = { roundId, survivors, signature };
  const confirmations: SurvivorConfirmation[] = [];
  for (const id of survivors)
    confirmations.push({ id, signature: await nodes[id - 1]!.p.confirm(coordinator, named) });
  return { ...named, confirmations };
}

/** The honest unmask step: every survivor reveals for U3 = everyone; returns the ring sum. */
export async function honestUnmask(nodes: readonly Node[], s: RoundState, keys: Keys): Promise<Uint32Array> {
  const survivors = s.sa.participants;
  const req = await confirmed(nodes, s.sa.roundId, survivors, keys);
  const reveals = [];
  for (const n of nodes) {
    const bytes = await n.p.unmask(COORD, req);
    reveals.push(decodeUnmask(bytes, { roundId: s.sa.roundId, participants: new Set(s.routed.u2) }));
  }
  return unmaskSum(s.sa, s.adverts, s.masked, reveals);
}

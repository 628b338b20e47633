/**
 * FlService against fakes of its narrow dependencies (FlServiceDeps): an in-memory req/resp
 * network that routes each request through the real protocol codecs to the handler another
 * service registered, a chain that "mines" committed entries, and a roster of capabilities. Real
 * model stores on disk, real training, real secure aggregation.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { PeerId } from '@libp2p/interface';
import { Registry } from 'prom-client';
import { toHex } from '../../chain/bytes.ts';
import type { ChainEvent } from '../../chain/chain.ts';
import type { ModelPayload } from '../../chain/types.ts';
import { identityFromSeed } from '../../identity/identity.ts';
import { createLogger } from '../../log.ts';
import type { Capability } from '../../membership/view.ts';
import type { PeerAction } from '../../p2p/peer-scores.ts';
import { type Handler, HandlerError, type ProtocolSpec, ReqRespError } from '../../p2p/reqresp.ts';
import { layoutDim } from '../local-round.ts';
import { routeShares } from '../secagg/aggregator.ts';
import { encodeShare } from '../secagg/messages.ts';
import { remoteLink } from './links.ts';
import { encodeModel, MAX_PARAMS, modelHash } from './model-codec.ts';
import {
  FL_ANNOUNCE,
  FL_COMMIT,
  FL_CONFIRM,
  FL_END,
  FL_KEYS,
  FL_SHARES,
  FL_TRAIN,
  FL_UNMASK,
} from './protocols.ts';
import type { FlRoundEvent } from './round-events.ts';
import { FlService, type FlServiceDeps } from './service.ts';
import { survivorSetMessage } from './survivor-set.ts';
import { flRoster, RoundRequestRefused } from './trust.ts';

/** Handlers by peer and protocol name; requests go through the specs' encoders and decoders. */
class FakeNet {
  readonly handlers = new Map<
    string,
    Map<string, { spec: ProtocolSpec<never, never, never>; fn: Handler<never, never> }>
  >();
  /** Every request sent: [from, to, protocol]. */
  readonly sent: [string, string, string][] = [];
  readonly ids = new Map<string, PeerId>();

  reqresp(self: PeerId): FlServiceDeps['reqresp'] {
    this.ids.set(self.toString(), self);
    return {
      register: async (spec, fn) => {
        const mine = this.handlers.get(self.toString()) ?? new Map();
        mine.set(spec.name, { spec: spec as never, fn: fn as never });
        this.handlers.set(self.toString(), mine);
      },
      request: async <Req, Res, Out>(peer: PeerId, spec: ProtocolSpec<Req, Res, Out>, req: Req) => {
        this.sent.push([self.toString(), peer.toString(), spec.name]);
        const h = this.handlers.get(peer.toString())?.get(spec.name);
        if (!h) throw new ReqRespError('dial-failed', `${peer} does not serve ${spec.name}`);
        const theirs = h.spec as unknown as ProtocolSpec<Req, Res, Out>;
        const handler = h.fn as unknown as Handler<Req, Res>;
        let answers: readonly Res[];
        try {
          const got = await handler(
            theirs.decodeRequest(spec.encodeRequest(req)),
            self,
            new AbortController().signal,
          );
          answers = got as readonly Res[];
        } catch (err) {
          if (err instanceof HandlerError) throw new ReqRespError('invalid-request', err.message);
          throw new ReqRespError('server-error', (err as Error).message);
        }
        return answers.map((r) => spec.decodeResponse(theirs.encodeResponse(r)));
      },
    };
  }
}

/** The chain every fake node shares: a committed model entry is mined (becomes the head) at once. */
class FakeChain {
  head: ModelPayload | undefined;
  readonly committed: ModelPayload[] = [];
  private readonly listeners = new Set<(events: readonly ChainEvent[]) => void>();
  private height = 0;

  view(): FlServiceDeps['chain'] {
    return {
      onEvents: (l) => {
        this.listeners.add(l);
        return () => this.listeners.delete(l);
      },
      getBlock: async () => undefined,
      modelHead: () => this.head,
    };
  }

  mine(p: ModelPayload): void {
    this.committed.push(p);
    this.head = p;
    const node = { onMain: true, entryIds: [], hashHex: toHex(new Uint8Array(32).fill(++this.height)) };
    for (const l of this.listeners) l([{ type: 'block-connected', node } as unknown as ChainEvent]);
  }
}

interface Fake {
  readonly id: PeerId;
  readonly service: FlService;
  readonly registry: Registry;
}

describe('FlService with fakes of its dependencies', () => {
  const net = new FakeNet();
  const chain = new FakeChain();
  const caps = new Map<string, Capability[]>();
  const penalties: [string, PeerAction, string][] = [];
  const nodes: Fake[] = [];
  let dir: string;
  const [coordinator, trainer, trainer2, bystander] = [0, 1, 2, 3];

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-fl-service-'));
    const ids = await Promise.all([1, 2, 3, 4].map((k) => identityFromSeed(new Uint8Array(32).fill(k))));
    const roles: Capability[][] = [['coordinate', 'train'], ['train'], ['train'], ['submit']];
    for (const [k, id] of ids.entries()) caps.set(id.peerId.toString(), roles[k]!);
    const roster = flRoster({
      mode: 'roster',
      member: (p) => (caps.has(p) ? { capabilities: new Set(caps.get(p)) } : undefined),
      claims: () => [],
    });
    for (const [k, id] of ids.entries()) {
      const registry = new Registry();
      const self = id.peerId.toString();
      const service = new FlService(
        {
          self,
          dataDir: path.join(dir, `n${k}`),
          registry,
          reqresp: net.reqresp(id.peerId),
          peers: () => ids.filter((o) => o !== id).map((o) => o.peerId),
          roster,
          chain: chain.view(),
          addEntry: async (p) => {
            chain.mine(p);
            return 'entry';
          },
          penalise: (peer, action, reason) => penalties.push([peer, action, reason]),
          sign: async (m) => id.privateKey.sign(m),
          log: createLogger('error'),
        },
        {
          slice: { index: Math.min(k, 2), of: 3, mode: 'iid', seed: 42 },
          deadlineMs: 20_000,
          mode: 'update',
        },
      );
      await service.start();
      nodes.push({ id: id.peerId, service, registry });
    }
  });
  after(async () => {
    for (const n of nodes) await n.service.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const metric = async (n: Fake, name: string, labels: Record<string, string>) => {
    const m = await n.registry.getSingleMetric(name)?.get();
    return m?.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value ?? 0;
  };

  test('a coordinator’s round invites the train members only and commits a version extending the head', async () => {
    const c = nodes[coordinator]!;
    const events: FlRoundEvent[] = [];
    c.service.on('round', (e) => events.push(e));
    c.service.startRounds({ rounds: 2, noiseMultiplier: 0.05 });
    await (c.service as unknown as { runner: { idle(): Promise<void> } }).runner.idle();
    const done = events.filter((e) => e.status !== 'running');
    assert.deepEqual(
      done.map((e) => [e.round, e.status, e.error]),
      [
        [1, 'completed', null],
        [2, 'completed', null],
      ],
    );
    const trainers = [coordinator, trainer, trainer2].map((k) => nodes[k]!.id.toString());
    assert.deepEqual([...done[0]!.participants].sort(), [...trainers].sort());
    // The member without `train` was never asked anything.
    const b = nodes[bystander]!.id.toString();
    assert.deepEqual(
      net.sent.filter(([, to, p]) => to === b && p.startsWith('fl-')),
      [],
    );
    assert.deepEqual(
      chain.committed.map((p) => [p.round, p.parentHash && toHex(p.parentHash)]),
      [
        [1, null],
        [2, toHex(chain.committed[0]!.modelHash)],
      ],
    );
    // Every participant holds the new version it was pushed, and stored version 1, which round 2
    // announced as the chain's head (no block here carries entries for watchChain to see).
    for (const k of [trainer, trainer2]) {
      assert.ok(await nodes[k]!.service.store.has(toHex(chain.head!.modelHash)));
      assert.ok(await nodes[k]!.service.store.getEncoded(toHex(chain.committed[0]!.modelHash)));
    }
  });

  test('an announcement from a member without coordinate is refused, counted and penalised', async () => {
    const intruder = nodes[trainer2]!;
    const victim = nodes[trainer]!;
    const penaltiesBefore = penalties.length;
    const announcement = {
      roundId: new Uint8Array(32).fill(9),
      round: (chain.head?.round ?? 0) + 1,
      modelHash: chain.head?.modelHash ?? null,
      paramCount: victim.service.data.paramCount,
      dp: { clipNorm: 4, noiseMultiplier: 0.3, weightCap: 1000 },
      train: { epochs: 1, batchSize: 16, learningRate: 8, l2: 0, seed: 5 },
      deadlineMs: 5_000,
      privacy: { mode: 'update' as const },
    };
    await assert.rejects(
      net.reqresp(intruder.id).request(victim.id, FL_ANNOUNCE, announcement),
      (e: unknown) =>
        e instanceof ReqRespError && e.code === 'invalid-request' && /not a coordinator/.test(e.message),
    );
    assert.equal(
      await metric(victim, 'cairn_fl_announcements_refused_total', { reason: 'not-coordinator' }),
      1,
    );
    assert.deepEqual(
      penalties.slice(penaltiesBefore).map(([p, a]) => [p, a]),
      [[intruder.id.toString(), 'low-tolerance']],
    );
    assert.equal(victim.service.participant.active, 0, 'no round state was kept for it');
    // The coordinator's announcement is still answered.
    const ok = await net.reqresp(nodes[coordinator]!.id).request(victim.id, FL_ANNOUNCE, announcement);
    assert.equal(ok[0]!.accept, true);
  });

  test('a commit of another size than its round’s, or of a round not trained in, is refused, counted and penalised', async () => {
    const c = nodes[coordinator]!;
    const victim = nodes[trainer]!;
    const rr = net.reqresp(c.id);
    const paramCount = victim.service.data.paramCount;
    const announce = (k: number) =>
      rr.request(victim.id, FL_ANNOUNCE, {
        roundId: new Uint8Array(32).fill(k),
        round: (chain.head?.round ?? 0) + 1,
        modelHash: chain.head?.modelHash ?? null,
        paramCount,
        dp: { clipNorm: 4, noiseMultiplier: 0.3, weightCap: 1000 },
        train: { epochs: 1, batchSize: 16, learningRate: 8, l2: 0, seed: 5 },
        deadlineMs: 5_000,
        privacy: { mode: 'update' as const },
      });
    const penaltiesBefore = penalties.length;
    const heldBefore = await metric(victim, 'cairn_fl_models_held_total', { fate: 'held' });
    const activeBefore = victim.service.participant.active;
    assert.equal((await announce(21))[0]!.accept, true);
    await assert.rejects(
      rr.request(victim.id, FL_COMMIT, {
        roundId: new Uint8Array(32).fill(21),
        model: encodeModel(new Float64Array(MAX_PARAMS)),
      }),
      (e: unknown) => e instanceof ReqRespError && e.code === 'invalid-request',
    );
    assert.equal(await metric(victim, 'cairn_fl_commits_refused_total', { reason: 'invalid-value' }), 1);
    assert.deepEqual(
      penalties.slice(penaltiesBefore).map(([p, a]) => [p, a]),
      [[c.id.toString(), 'low-tolerance']],
    );
    // Of its size, but the round never got past its announcement here: nothing of this node's is
    // in it, so it is not held (what a round it trained in commits is: the first test).
    assert.equal((await announce(22))[0]!.accept, true);
    const candidate = new Float64Array(paramCount).fill(0.5);
    await assert.rejects(
      rr.request(victim.id, FL_COMMIT, {
        roundId: new Uint8Array(32).fill(22),
        model: encodeModel(candidate),
      }),
      (e: unknown) => e instanceof ReqRespError && /did not train in/.test(e.message),
    );
    const hash = toHex(modelHash(encodeModel(candidate)));
    assert.equal(await victim.service.store.getEncoded(hash), undefined);
    assert.equal(victim.service.store.heldModel(hash), undefined);
    assert.equal(await metric(victim, 'cairn_fl_commits_refused_total', { reason: 'untrained' }), 1);
    assert.equal(await metric(victim, 'cairn_fl_models_held_total', { fate: 'held' }), heldBefore);
    assert.deepEqual(
      penalties.slice(penaltiesBefore + 1).map(([p, a]) => [p, a]),
      [[c.id.toString(), 'mid-tolerance']],
    );
    assert.equal(victim.service.participant.active, activeBefore, 'both rounds are forgotten');
  });

  test('a coordinator asking twice for a survivor set, or relaying bad confirmations, is refused, counted and penalised', async () => {
    const c = nodes[coordinator]!;
    const coordinatorKey = await identityFromSeed(new Uint8Array(32).fill(1));
    const rr = net.reqresp(c.id);
    const specs = {
      announce: FL_ANNOUNCE,
      keys: FL_KEYS,
      shares: FL_SHARES,
      train: FL_TRAIN,
      confirm: FL_CONFIRM,
      unmask: FL_UNMASK,
      commit: FL_COMMIT,
      end: FL_END,
    };
    const team = [coordinator, trainer, trainer2].map((k) => remoteLink(rr, nodes[k]!.id, specs));
    const roundId = new Uint8Array(32).fill(11);
    const paramCount = c.service.data.paramCount;
    const a = {
      roundId,
      round: (chain.head?.round ?? 0) + 1,
      modelHash: chain.head?.modelHash ?? null,
      paramCount,
      dp: { clipNorm: 4, noiseMultiplier: 0.3, weightCap: 1000 },
      train: { epochs: 1, batchSize: 64, learningRate: 8, l2: 0, seed: 5 },
      deadlineMs: 5_000,
      privacy: { mode: 'update' as const },
    };
    for (const l of team) assert.equal((await l.announce(a)).accept, true);
    const roster = team.map((l) => l.peerId);
    const adverts = await Promise.all(
      team.map((l) => l.keys({ roundId, threshold: 2, participants: roster })),
    );
    const shares = await Promise.all(team.map((l) => l.shares({ roundId, adverts })));
    const config = { roundId, participants: [1, 2, 3], threshold: 2, dim: layoutDim(paramCount) };
    const routed = routeShares(
      config,
      [1, 2, 3],
      shares.flatMap((list, k) => list.map((bytes) => ({ from: k + 1, bytes }))),
    );
    for (const [k, l] of team.entries())
      await l.train({ roundId, u2: routed.u2, inbox: routed.inbox.get(k + 1)!.map(encodeShare) }, 5_000);
    const named = async (survivors: number[]) => ({
      roundId,
      survivors,
      signature: await coordinatorKey.privateKey.sign(survivorSetMessage(roundId, survivors)),
    });
    const all = await named([1, 2, 3]);
    const confirmations = [];
    for (const [k, l] of team.entries()) confirmations.push({ id: k + 1, signature: await l.confirm(all) });
    const victim = nodes[trainer]!;
    const before = penalties.length;
    await team[1]!.unmask({ ...all, confirmations });
    // The same set again is a retry: answered, not penalised.
    await team[1]!.confirm(all);
    await team[1]!.unmask({ ...all, confirmations });
    assert.equal(penalties.length, before);
    await assert.rejects(
      team[1]!.confirm(await named([1, 2])),
      (e: unknown) =>
        e instanceof ReqRespError && e.code === 'invalid-request' && /another survivor set/.test(e.message),
    );
    // Unsigned (signed by someone else): refused too.
    await assert.rejects(
      team[2]!.unmask({ ...all, signature: new Uint8Array(64).fill(1), confirmations }),
      (e: unknown) => e instanceof ReqRespError && /not signed by the round/.test(e.message),
    );
    // A relayed confirmation that does not verify, and a quorum short of the coordinator's
    // others (its own slot is on this roster): the coordinator split or forged them.
    const forged = confirmations.map((c) =>
      c.id === 2 ? { id: 2, signature: new Uint8Array(64).fill(7) } : c,
    );
    await assert.rejects(
      team[2]!.unmask({ ...all, confirmations: forged }),
      (e: unknown) => e instanceof ReqRespError && /no survivor’s signature/.test(e.message),
    );
    await assert.rejects(
      team[2]!.unmask({ ...all, confirmations: confirmations.filter((c) => c.id !== 2) }),
      (e: unknown) => e instanceof ReqRespError && /confirmations/.test(e.message),
    );
    assert.equal(await metric(victim, 'cairn_fl_unmask_refused_total', { reason: 'second-survivor-set' }), 1);
    for (const reason of ['bad-signature', 'bad-confirmation', 'too-few-confirmations'])
      assert.equal(await metric(nodes[trainer2]!, 'cairn_fl_unmask_refused_total', { reason }), 1, reason);
    assert.deepEqual(
      penalties.slice(before).map(([p, a]) => [p, a]),
      Array.from({ length: 4 }, () => [c.id.toString(), 'low-tolerance']),
    );
    // The honest request still gets its answer: nothing was revealed to the bad ones.
    await team[2]!.unmask({ ...all, confirmations });
    // Done with: its slots are free for the next test's round (one coordinator holds 2 of 4).
    for (const l of team) await l.end!({ roundId });
  });

  test('keys and shares requests that could expose an update are refused, counted and penalised', async () => {
    const c = nodes[coordinator]!;
    const victim = nodes[trainer]!;
    const rr = net.reqresp(c.id);
    const specs = {
      announce: FL_ANNOUNCE,
      keys: FL_KEYS,
      shares: FL_SHARES,
      train: FL_TRAIN,
      confirm: FL_CONFIRM,
      unmask: FL_UNMASK,
      commit: FL_COMMIT,
      end: FL_END,
    };
    const team = [coordinator, trainer, trainer2].map((k) => remoteLink(rr, nodes[k]!.id, specs));
    const roundId = new Uint8Array(32).fill(12);
    const a = {
      roundId,
      round: (chain.head?.round ?? 0) + 1,
      modelHash: chain.head?.modelHash ?? null,
      paramCount: c.service.data.paramCount,
      dp: { clipNorm: 4, noiseMultiplier: 0.3, weightCap: 1000 },
      train: { epochs: 1, batchSize: 64, learningRate: 8, l2: 0, seed: 5 },
      deadlineMs: 5_000,
      privacy: { mode: 'update' as const },
    };
    for (const l of team) assert.equal((await l.announce(a)).accept, true);
    const id = (k: number) => nodes[k]!.id.toString();
    const before = penalties.length;
    const invalid = (pattern: RegExp) => (e: unknown) =>
      e instanceof ReqRespError && e.code === 'invalid-request' && pattern.test(e.message);
    // A roster of two, then one naming the member without train.
    await assert.rejects(
      team[1]!.keys({ roundId, threshold: 2, participants: [id(coordinator), id(trainer)] }),
      invalid(/at least 3 distinct members/),
    );
    await assert.rejects(
      team[1]!.keys({ roundId, threshold: 2, participants: [id(coordinator), id(trainer), id(bystander)] }),
      invalid(/does not hold train/),
    );
    // A proper roster is answered, and the shares step once.
    const roster = [id(coordinator), id(trainer), id(trainer2)];
    const adverts = await Promise.all(
      team.map((l) => l.keys({ roundId, threshold: 2, participants: roster })),
    );
    assert.equal((await team[1]!.shares({ roundId, adverts })).length, 2);
    await assert.rejects(team[1]!.shares({ roundId, adverts }), invalid(/already requested/));
    const refusals: [string, string][] = [
      ['keys', 'roster-too-small'],
      ['keys', 'not-a-trainer'],
      ['shares', 'asked-twice'],
    ];
    for (const [step, reason] of refusals)
      assert.equal(
        await metric(victim, 'cairn_fl_secagg_refused_total', { step, reason }),
        1,
        `${step} ${reason}`,
      );
    assert.deepEqual(
      penalties.slice(before).map(([p, action]) => [p, action]),
      [
        [c.id.toString(), 'low-tolerance'],
        // The roster views of two members may differ by a block: a lighter penalty.
        [c.id.toString(), 'mid-tolerance'],
        [c.id.toString(), 'low-tolerance'],
      ],
    );
    for (const l of team) await l.end!({ roundId });
  });

  test('a participant counts the announcements it declines by reason; fl-end frees a held round', async () => {
    const c = nodes[coordinator]!;
    const link = remoteLink(net.reqresp(c.id), nodes[trainer2]!.id, {
      announce: FL_ANNOUNCE,
      keys: FL_KEYS,
      shares: FL_SHARES,
      train: FL_TRAIN,
      confirm: FL_CONFIRM,
      unmask: FL_UNMASK,
      commit: FL_COMMIT,
      end: FL_END,
    });
    const a = {
      roundId: new Uint8Array(32).fill(14),
      round: (chain.head?.round ?? 0) + 1,
      modelHash: chain.head?.modelHash ?? null,
      paramCount: c.service.data.paramCount,
      dp: { clipNorm: 4, noiseMultiplier: 0.3, weightCap: 1000 },
      train: { epochs: 1, batchSize: 64, learningRate: 8, l2: 0, seed: 5 },
      deadlineMs: 5_000,
      privacy: { mode: 'update' as const },
    };
    assert.equal((await link.announce(a)).accept, true);
    assert.equal((await link.announce(a)).reason, 'round already announced');
    assert.equal(
      (await link.announce({ ...a, roundId: new Uint8Array(32).fill(15), paramCount: 3 })).accept,
      false,
    );
    const declined = (reason: string) =>
      metric(nodes[trainer2]!, 'cairn_fl_announce_declined_total', { reason });
    assert.equal(await declined('duplicate'), 1);
    assert.equal(await declined('param-mismatch'), 1);
    assert.equal(await declined('busy'), 0);
    // A second round of the same coordinator fits its share (half of 4 slots); a third does not.
    const second = { ...a, roundId: new Uint8Array(32).fill(16) };
    assert.equal((await link.announce(second)).accept, true);
    assert.match(
      (await link.announce({ ...a, roundId: new Uint8Array(32).fill(17) })).reason,
      /^busy-coordinator/,
    );
    assert.equal(await declined('busy-coordinator'), 1);
    // The coordinator ends the rounds it holds: forgotten at once (else at deadline + 60 s).
    const ended = () => metric(nodes[trainer2]!, 'cairn_fl_rounds_ended_early_total', {});
    const endedBefore = await ended();
    await link.end!({ roundId: second.roundId });
    await link.end!({ roundId: a.roundId });
    assert.equal(await ended(), endedBefore + 2);
    // The slot is free again; the ended round id is not (a rerun could replay its confirmations).
    assert.match((await link.announce(a)).reason, /already taken part in/);
    const third = { ...a, roundId: new Uint8Array(32).fill(18) };
    assert.equal((await link.announce(third)).accept, true, 'its slot is free again');
    await link.end!({ roundId: third.roundId });
    await link.end!({ roundId: third.roundId });
    assert.equal(await ended(), endedBefore + 3, 'a round not held is no error and not counted');
  });

  test('a node without coordinate refuses to start rounds; named participants must hold train', () => {
    assert.throws(
      () => nodes[trainer]!.service.startRounds({ rounds: 1 }),
      (e: unknown) => e instanceof RoundRequestRefused && e.code === 'not-coordinator',
    );
    assert.throws(
      () =>
        nodes[coordinator]!.service.startRounds({
          rounds: 1,
          participants: [nodes[bystander]!.id.toString()],
        }),
      (e: unknown) => e instanceof RoundRequestRefused && e.code === 'not-a-trainer',
    );
  });
});

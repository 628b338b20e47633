/**
 * Federated learning on a node: serves the participant side of rounds and `model-by-hash`, keeps
 * every model version the chain commits to, and coordinates rounds it is asked to run (admin
 * command `fl.startRound` or `--fl-every`). Each round's outcome is committed as a `model` entry
 * signed by this node; `round` and `version` events let the job worker report them.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import type { PeerId } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { toHex } from '../../chain/bytes.ts';
import type { ChainEvent } from '../../chain/chain.ts';
import { DecodeError } from '../../chain/codec/errors.ts';
import type { CairnNode } from '../../node.ts';
import { FL_DEFAULTS } from '../../options.ts';
import { HandlerError, type ProtocolSpec, RESULT } from '../../p2p/reqresp.ts';
import { SecAggError } from '../secagg/messages.ts';
import type { ParticipantLink } from './coordinator.ts';
import { FlData, type SliceOptions } from './data.ts';
import { localLink, remoteLink } from './links.ts';
import { counted, createFlMetrics, type FlMetrics } from './metrics.ts';
import { ModelStore } from './model-store.ts';
import { ModelSync, modelEntriesOf } from './model-sync.ts';
import { FlParticipant, type Misbehaviour } from './participant.ts';
import {
  FL_ANNOUNCE,
  FL_COMMIT,
  FL_KEYS,
  FL_SHARES,
  FL_TRAIN,
  FL_UNMASK,
  MODEL_BY_HASH,
} from './protocols.ts';
import type { FlEvents } from './round-events.ts';
import { modelHeadOf, type RoundRequest, RoundRunner } from './round-runner.ts';

export interface FlOptions {
  readonly slice?: SliceOptions;
  /** Decline every invitation (policy). */
  readonly decline?: boolean;
  readonly misbehave?: Misbehaviour;
  /** Start one round this often (ms) on this node; 0/undefined = only on command. */
  readonly everyMs?: number;
  /** How long a round waits for masked updates (default in options.ts). */
  readonly deadlineMs?: number;
  /** How long a round waits for the previous version to be mined (default in options.ts). */
  readonly headWaitMs?: number;
}

export class FlService extends EventEmitter<FlEvents> {
  readonly metrics: FlMetrics;
  readonly store: ModelStore;
  readonly data: FlData;
  readonly participant: FlParticipant;
  readonly models: ModelSync;
  private readonly specs;
  private readonly runner: RoundRunner;
  private readonly self: string;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  // A block that cannot be loaded must not become an unhandled rejection (it ends the process).
  private readonly onChainEvents = (events: readonly ChainEvent[]) => {
    this.runner.headMoved();
    void this.watchChain(events).catch((err: unknown) =>
      this.node.log.warn({ err: (err as Error).message }, 'model watch failed'),
    );
  };

  constructor(
    private readonly node: CairnNode,
    readonly opts: FlOptions = {},
  ) {
    super();
    this.self = node.identity.peerId.toString();
    this.metrics = createFlMetrics(node.metrics.registry);
    const c = <Req, Res, Out>(s: ProtocolSpec<Req, Res, Out>) => counted(s, this.metrics.bytes);
    this.specs = {
      announce: c(FL_ANNOUNCE),
      keys: c(FL_KEYS),
      shares: c(FL_SHARES),
      train: c(FL_TRAIN),
      unmask: c(FL_UNMASK),
      commit: c(FL_COMMIT),
      model: c(MODEL_BY_HASH),
    };
    this.store = new ModelStore(path.join(node.opts.dataDir, 'models'));
    const trains = node.opts.capabilities.includes('train');
    this.data = new FlData(trains ? opts.slice : undefined);
    this.models = new ModelSync({
      store: this.store,
      reqresp: node.reqresp,
      spec: this.specs.model,
      peers: () => node.peers.book.all().map((r) => r.peer),
      metrics: this.metrics,
      log: node.log.child({ part: 'fl' }),
    });
    this.participant = new FlParticipant({
      self: this.self,
      data: () => this.data.train(),
      decline: opts.decline ?? false,
      ...(opts.misbehave ? { misbehave: opts.misbehave } : {}),
      resolveModel: (hash, count, from) => this.models.resolve(hash, count, [from]),
      storeModel: (bytes) => this.store.putEncoded(bytes),
    });
    this.runner = new RoundRunner({
      self: this.self,
      data: this.data,
      store: this.store,
      models: this.models,
      modelHead: () => modelHeadOf(node.chain.tipModel),
      links: (participants) => this.links(participants),
      commitEntry: async (payload) => {
        const { entry, result } = await node.addEntry(payload);
        if (result.status === 'rejected') throw new Error(`model entry rejected: ${result.reason}`);
        return entry.idHex;
      },
      penalise: (peer, reason) => {
        try {
          node.peers.penalise(peerIdFromString(peer), 'mid-tolerance', reason);
        } catch {}
      },
      emitRound: (e) => this.emit('round', e),
      emitVersion: (e) => this.emit('version', e),
      metrics: this.metrics,
      deadlineMs: opts.deadlineMs ?? FL_DEFAULTS.deadlineMs,
      headWaitMs: opts.headWaitMs ?? FL_DEFAULTS.headWaitMs,
      log: node.log.child({ part: 'fl' }),
    });
  }

  /** Registers the protocols (before the host starts) and starts watching the chain. */
  async start(): Promise<void> {
    const p = this.participant;
    const serve = <Req, Res>(
      spec: ProtocolSpec<Req, Res, unknown>,
      fn: (from: string, req: Req) => Res | Promise<Res>,
    ) =>
      this.node.reqresp.register(spec, async (req, peer: PeerId) => {
        try {
          return [await fn(peer.toString(), req)];
        } catch (err) {
          // The coordinator's mistakes (or lies) are invalid requests, not our failures.
          if (err instanceof SecAggError || err instanceof DecodeError)
            throw new HandlerError(RESULT.invalidRequest, err.message);
          throw err;
        }
      });
    await serve(this.specs.announce, async (from, a) => {
      const r = await p.announce(from, a);
      this.metrics.answers.inc({ answer: r.accept ? 'accepted' : 'declined' });
      return r;
    });
    await serve(this.specs.keys, (from, k) => p.keys(from, k));
    await serve(this.specs.shares, (from, s) => p.shares(from, s));
    await serve(this.specs.train, (from, t) => p.train(from, t));
    await serve(this.specs.unmask, (from, u) => p.unmask(from, u));
    await serve(this.specs.commit, async (from, c) => {
      await p.commit(from, c);
      return true as const;
    });
    await this.node.reqresp.register(this.specs.model, async (hash) => {
      const bytes = await this.store.getEncoded(toHex(hash));
      if (!bytes) throw new HandlerError(RESULT.unavailable, 'model not stored here');
      return [bytes];
    });
    this.node.chainService.on('events', this.onChainEvents);
    // Featurise in the background once the node is up, so the first round does not wait for it.
    if (this.data.slice) setTimeout(() => this.data.train(), 500).unref();
    if (this.opts.everyMs && this.opts.everyMs > 0) {
      this.timer = setInterval(() => {
        if (!this.runner.busy) this.startRounds({ rounds: 1 });
      }, this.opts.everyMs);
      this.timer.unref();
    }
  }

  /** Schedules `rounds` rounds one after another; returns their ids at once. */
  startRounds(req: RoundRequest): { roundIds: string[] } {
    if (this.stopped) throw new Error('federated learning is stopped');
    for (const p of req.participants ?? []) {
      try {
        peerIdFromString(p);
      } catch {
        throw new Error(`not a peer id: ${p}`);
      }
    }
    const ids = Array.from({ length: req.rounds }, () => new Uint8Array(randomBytes(32)));
    this.runner.schedule(ids, req);
    return { roundIds: ids.map(toHex) };
  }

  /** Links to the round's participants: given peer ids, or every connected trainer (and this node). */
  private links(participants: readonly string[] | undefined): ParticipantLink[] {
    const want = participants ?? [
      ...(this.node.opts.capabilities.includes('train') ? [this.self] : []),
      ...this.node.peers.book
        .all()
        .filter((r) => r.status.capabilities.includes('train'))
        .map((r) => r.peer.toString()),
    ];
    return [...new Set(want)].map((id) =>
      id === this.self
        ? localLink(this.self, this.participant)
        : remoteLink(this.node.reqresp, peerIdFromString(id), this.specs),
    );
  }

  /** Every model entry on the main chain gets its model stored here. */
  private async watchChain(events: readonly ChainEvent[]): Promise<void> {
    for (const e of events) {
      if (e.type !== 'block-connected' || !e.node.onMain || this.stopped) continue;
      for (const payload of await modelEntriesOf(this.node.chain, e.node)) {
        this.models
          .resolve(payload.modelHash, this.data.paramCount)
          .catch((err) =>
            this.node.log.warn({ err: (err as Error).message }, 'model of a block unavailable'),
          );
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.node.chainService.off('events', this.onChainEvents);
    await this.runner.stop();
  }
}

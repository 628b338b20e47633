/**
 * Federated learning on a node: serves the participant side of rounds and `model-by-hash`, keeps
 * every model version the chain commits to, and coordinates rounds it is asked to run (admin
 * command `fl.startRound` or `--fl-every`). Each round's outcome is committed as a `model` entry
 * signed by this node; `round` and `version` events let the job worker report them.
 *
 * It sees the node through FlServiceDeps only (as js-libp2p's services see `Components`), so it
 * runs in unit tests against fakes of each part, and FL imports nothing of node.ts.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import type { PeerId } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import type { Registry } from 'prom-client';
import { bytesEqual, toHex } from '../../chain/bytes.ts';
import type { Chain, ChainEvent } from '../../chain/chain.ts';
import { DecodeError } from '../../chain/codec/errors.ts';
import type { ModelPayload } from '../../chain/types.ts';
import type { Logger } from '../../log.ts';
import { FL_DEFAULTS } from '../../options.ts';
import type { PeerAction } from '../../p2p/peer-scores.ts';
import { HandlerError, type ProtocolSpec, RESULT, type ReqResp } from '../../p2p/reqresp.ts';
import { planDpSgd } from '../dp-sgd-fedavg.ts';
import { SecAggError } from '../secagg/messages.ts';
import type { ParticipantLink } from './coordinator.ts';
import { FlData, type SliceOptions } from './data.ts';
import { localLink, remoteLink } from './links.ts';
import { counted, createFlMetrics, type FlMetrics } from './metrics.ts';
import { ModelStore } from './model-store.ts';
import { ModelSync, modelEntriesOf } from './model-sync.ts';
import {
  CommitRefused,
  FlParticipant,
  type Misbehaviour,
  SecAggRefused,
  UnmaskRefused,
} from './participant.ts';
import { PrivacyGate, type PrivacyStatus } from './privacy-gate.ts';
import {
  FL_ANNOUNCE,
  FL_COMMIT,
  FL_CONFIRM,
  FL_END,
  FL_KEYS,
  FL_SHARES,
  FL_TRAIN,
  FL_UNMASK,
  MODEL_BY_HASH,
} from './protocols.ts';
import type { FlEvents } from './round-events.ts';
import { modelHeadOf, type RoundRequest, RoundRunner } from './round-runner.ts';
import { type FlRoster, RoundRequestRefused } from './trust.ts';
import type { DpMode } from './wire.ts';

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
  /**
   * DP mode (default in options.ts, `record`): of the rounds this node coordinates, and of those
   * it takes part in (`record` declines update-level rounds; `update` takes both).
   */
  readonly mode?: DpMode;
  /** Sets this node's privacy budget (ε at δ = 1e-5) at start; absent: the ledger keeps its own. */
  readonly budgetEpsilon?: number;
}

/** The chain as FL reads it: its events, its blocks and the model head at its tip. */
export interface FlChain extends Pick<Chain, 'getBlock'> {
  /** ChainService's `events` (block-connected ones carry the model entries); returns an unsubscribe. */
  onEvents(listener: (events: readonly ChainEvent[]) => void): () => void;
  /** The newest model version on the main chain (chain/model-ledger.ts). */
  modelHead(): ModelPayload | undefined;
  /** The head and the versions before it on the main chain, newest first, at most `limit`. */
  modelLineage?(limit: number): readonly ModelPayload[];
}

/** What the service uses of the node, and nothing more. */
export interface FlServiceDeps {
  /** This node's peer id. */
  readonly self: string;
  /** Models go to `<dataDir>/models`. */
  readonly dataDir: string;
  /** FL metrics register here. */
  readonly registry: Registry;
  readonly reqresp: Pick<ReqResp, 'register' | 'request'>;
  /** Connected peers with a status, best first: whom to invite and fetch models from. */
  peers(): readonly PeerId[];
  /** Who may coordinate and who may train (trust.ts). */
  readonly roster: FlRoster;
  readonly chain: FlChain;
  /** Signs the entry with this node's key, adds and gossips it; rejects when it is refused. Returns its id. */
  addEntry(payload: ModelPayload): Promise<string>;
  penalise(peer: string, action: PeerAction, reason: string): void;
  /** Signs with this node's identity key (the survivor sets of the rounds it coordinates). */
  sign(message: Uint8Array): Promise<Uint8Array>;
  readonly log: Logger;
}

export class FlService extends EventEmitter<FlEvents> {
  readonly metrics: FlMetrics;
  readonly store: ModelStore;
  readonly data: FlData;
  readonly participant: FlParticipant;
  readonly models: ModelSync;
  readonly privacy: PrivacyGate;
  private readonly specs;
  private readonly runner: RoundRunner;
  private readonly self: string;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private stopped = false;
  // A block that cannot be loaded must not become an unhandled rejection (it ends the process).
  private readonly onChainEvents = (events: readonly ChainEvent[]) => {
    this.runner.headMoved();
    void this.watchChain(events).catch((err: unknown) =>
      this.log.warn({ err: (err as Error).message }, 'model watch failed'),
    );
  };

  private readonly d: FlServiceDeps;
  readonly opts: FlOptions;
  constructor(d: FlServiceDeps, opts: FlOptions = {}) {
    super();
    this.d = d;
    this.opts = opts;
    this.self = d.self;
    this.log = d.log.child({ part: 'fl' });
    this.metrics = createFlMetrics(d.registry);
    const c = <Req, Res, Out>(s: ProtocolSpec<Req, Res, Out>) => counted(s, this.metrics.bytes);
    this.specs = {
      announce: c(FL_ANNOUNCE),
      keys: c(FL_KEYS),
      shares: c(FL_SHARES),
      train: c(FL_TRAIN),
      confirm: c(FL_CONFIRM),
      unmask: c(FL_UNMASK),
      commit: c(FL_COMMIT),
      end: c(FL_END),
      model: c(MODEL_BY_HASH),
    };
    this.store = new ModelStore(path.join(d.dataDir, 'models'), {
      onHeld: (fate) => this.metrics.heldModels.inc({ fate }),
    });
    this.data = new FlData(d.roster.mayTrain(this.self) ? opts.slice : undefined, FL_DEFAULTS.splitSeed);
    this.models = new ModelSync({
      store: this.store,
      reqresp: d.reqresp,
      spec: this.specs.model,
      peers: () => d.peers(),
      metrics: this.metrics,
      penalise: (peer, action, reason) => d.penalise(peer, action, reason),
      log: this.log,
    });
    const mode = opts.mode ?? FL_DEFAULTS.mode;
    this.privacy = new PrivacyGate({
      dataDir: d.dataDir,
      mode,
      ...(opts.budgetEpsilon !== undefined ? { budgetEpsilon: opts.budgetEpsilon } : {}),
      declined: this.metrics.declined,
      log: this.log,
    });
    this.participant = new FlParticipant({
      self: this.self,
      privacy: this.privacy,
      data: () => this.data.train(),
      decline: opts.decline ?? false,
      ...(opts.misbehave ? { misbehave: opts.misbehave } : {}),
      // An announcement may name a model no main-chain entry names: held, not stored, unless it
      // is the chain's head (the honest case).
      resolveModel: (hash, count, from) => {
        const head = d.chain.modelHead()?.modelHash;
        // Within what the announce request leaves (FL_ANNOUNCE's timeout) for the answer.
        return this.models.resolve(
          hash,
          count,
          [from],
          !!hash && !!head && bytesEqual(hash, head),
          FL_DEFAULTS.modelFetch.announceBudgetMs,
        );
      },
      storeModel: (bytes, count, from) => this.store.hold(bytes, count, from),
      onDecline: (reason) => this.metrics.announceDeclined.inc({ reason }),
      sign: (message) => d.sign(message),
      minRoster: FL_DEFAULTS.minRosterMembers,
      // Where the chain keeps a roster, every member a round names must hold train; an open
      // network has no such view (and no bound on identities: a signature is all it can check).
      ...(d.roster.mode === 'roster' ? { mayTrain: (peer: string) => d.roster.mayTrain(peer) } : {}),
    });
    this.runner = new RoundRunner({
      self: this.self,
      data: this.data,
      store: this.store,
      models: this.models,
      modelHead: () => modelHeadOf(d.chain.modelHead()),
      modelLineage: (limit) => (d.chain.modelLineage?.(limit) ?? []).map((p) => modelHeadOf(p)!),
      links: (participants) => this.links(participants),
      commitEntry: (payload) => d.addEntry(payload),
      sign: (message) => d.sign(message),
      penalise: (peer, reason) => d.penalise(peer, 'mid-tolerance', reason),
      emitRound: (e) => this.emit('round', e),
      emitVersion: (e) => this.emit('version', e),
      metrics: this.metrics,
      deadlineMs: opts.deadlineMs ?? FL_DEFAULTS.deadlineMs,
      lossTolerance: FL_DEFAULTS.lossTolerance,
      headWaitMs: opts.headWaitMs ?? FL_DEFAULTS.headWaitMs,
      headFetchAttempts: FL_DEFAULTS.headFetchAttempts,
      headFallbackDepth: FL_DEFAULTS.headFallbackDepth,
      mode,
      // z spends the default budget over the planned steps; a node's own budget is its ledger's.
      recordPlan: planDpSgd(FL_DEFAULTS.privacy.budgetEpsilon, FL_DEFAULTS.privacy.delta),
      recordUpdateClipNorm: FL_DEFAULTS.recordUpdateClipNorm,
      log: this.log,
    });
  }

  /** The privacy ledger's report (undefined until it is loaded, or when it is unreadable). */
  privacyStatus(): PrivacyStatus | undefined {
    return this.privacy.status();
  }

  /** The operator's new budget for this node (ε); persisted. */
  setBudget(epsilon: number): Promise<PrivacyStatus> {
    return this.privacy.setBudget(epsilon);
  }

  /** Registers the protocols (before the host starts) and starts watching the chain. */
  async start(): Promise<void> {
    // Before the announce handler: a round must never be judged against a ledger not yet read.
    await this.privacy.load();
    const p = this.participant;
    const serve = <Req, Res>(
      spec: ProtocolSpec<Req, Res, unknown>,
      fn: (from: string, req: Req) => Res | Promise<Res>,
    ) =>
      this.d.reqresp.register(spec, async (req, peer: PeerId) => {
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
      // Only a coordinator may start a round here: anyone else would choose our DP parameters
      // and collect our masked updates. An honest node checks its own right before it
      // announces, so this peer chose to ask.
      if (!this.d.roster.mayCoordinate(from)) {
        this.metrics.announcementsRefused.inc({ reason: 'not-coordinator' });
        this.d.penalise(from, 'low-tolerance', 'fl round announced by a member without coordinate');
        throw new HandlerError(RESULT.invalidRequest, 'not a coordinator of this network');
      }
      const r = await p.announce(from, a);
      this.metrics.answers.inc({ answer: r.accept ? 'accepted' : 'declined' });
      return r;
    });
    // A refused keys or shares request could have exposed an update: the coordinator's fault.
    const refusing =
      <Req, Res>(fn: (from: string, req: Req) => Promise<Res>) =>
      async (from: string, req: Req): Promise<Res> => {
        try {
          return await fn(from, req);
        } catch (err) {
          if (err instanceof SecAggRefused) {
            this.metrics.secaggRefused.inc({ step: err.step, reason: err.reason });
            // Views of the roster can lag a block behind one another: a member just revoked is
            // a smaller fault than a forged advert or a second request.
            const action = err.reason === 'not-a-trainer' ? 'mid-tolerance' : 'low-tolerance';
            this.d.penalise(from, action, `fl ${err.step} refused: ${err.message}`);
          }
          throw err;
        }
      };
    await serve(
      this.specs.keys,
      refusing((from, k) => p.keys(from, k)),
    );
    await serve(
      this.specs.shares,
      refusing((from, s) => p.shares(from, s)),
    );
    await serve(this.specs.train, (from, t) => p.train(from, t));
    // Asking twice with another set would expose one participant's update; an unsigned set is
    // one the coordinator could later deny; a relayed confirmation that does not verify, or too
    // few of them, is a split of the survivors. Either way the coordinator broke the protocol.
    const unmaskRefusing =
      <Req, Res>(fn: (from: string, req: Req) => Promise<Res>) =>
      async (from: string, req: Req): Promise<Res> => {
        try {
          return await fn(from, req);
        } catch (err) {
          if (err instanceof UnmaskRefused) {
            this.metrics.unmaskRefused.inc({ reason: err.reason });
            this.d.penalise(from, 'low-tolerance', `fl unmask refused: ${err.message}`);
          }
          throw err;
        }
      };
    await serve(
      this.specs.confirm,
      unmaskRefusing((from, c) => p.confirm(from, c)),
    );
    await serve(
      this.specs.unmask,
      unmaskRefusing((from, u) => p.unmask(from, u)),
    );
    await serve(this.specs.commit, async (from, c) => {
      try {
        // Undefined: a round whose training failed here, ended as on fl-end (participant.ts).
        if ((await p.commit(from, c)) === undefined) this.metrics.roundsEnded.inc();
      } catch (err) {
        // Not the size the coordinator's own announcement gave, or not a model at all.
        if (err instanceof DecodeError) {
          this.metrics.commitsRefused.inc({ reason: err.code });
          this.d.penalise(from, 'low-tolerance', `fl commit refused: ${err.message}`);
        }
        // A round this node never trained in: an honest coordinator does not send it, but a
        // train request lost on the way looks the same here, hence the smaller penalty.
        if (err instanceof CommitRefused) {
          this.metrics.commitsRefused.inc({ reason: err.reason });
          this.d.penalise(from, 'mid-tolerance', `fl commit refused: ${err.message}`);
        }
        throw err;
      }
      return true as const;
    });
    await serve(this.specs.end, (from, e) => {
      if (p.end(from, e)) this.metrics.roundsEnded.inc();
      return true as const;
    });
    await this.d.reqresp.register(this.specs.model, async (hash) => {
      const bytes = await this.store.getEncoded(toHex(hash));
      if (!bytes) throw new HandlerError(RESULT.unavailable, 'model not stored here');
      return [bytes];
    });
    this.unsubscribe = this.d.chain.onEvents(this.onChainEvents);
    // Featurise in the background once the node is up, so the first round does not wait for it.
    if (this.data.slice) setTimeout(() => this.data.train(), 500).unref();
    if (this.opts.everyMs && this.opts.everyMs > 0) {
      this.timer = setInterval(() => {
        if (this.runner.busy) return;
        if (!this.d.roster.mayCoordinate(this.self)) {
          this.log.debug('no round started: this node lacks coordinate');
          return;
        }
        this.startRounds({ rounds: 1 });
      }, this.opts.everyMs);
      this.timer.unref();
    }
  }

  /**
   * Schedules `rounds` rounds one after another; returns their ids at once. Refused
   * (RoundRequestRefused) when this node may not coordinate, or a named participant may not train.
   */
  startRounds(req: RoundRequest): { roundIds: string[] } {
    if (this.stopped) throw new RoundRequestRefused('stopped', 'federated learning is stopped');
    if (!this.d.roster.mayCoordinate(this.self))
      throw new RoundRequestRefused('not-coordinator', 'this node lacks the coordinate capability');
    for (const p of req.participants ?? []) {
      try {
        peerIdFromString(p);
      } catch {
        throw new RoundRequestRefused('bad-peer-id', `not a peer id: ${p}`);
      }
      if (!this.d.roster.mayTrain(p))
        throw new RoundRequestRefused('not-a-trainer', `${p} lacks the train capability`);
    }
    const ids = Array.from({ length: req.rounds }, () => new Uint8Array(randomBytes(32)));
    this.runner.schedule(ids, req);
    return { roundIds: ids.map(toHex) };
  }

  /**
   * Links to the round's participants: the given peer ids, or every connected trainer (and this
   * node), as the roster says when the round starts: a member that lost `train` since is not asked.
   */
  private links(participants: readonly string[] | undefined): ParticipantLink[] {
    const want = participants ?? [this.self, ...this.d.peers().map(String)];
    return [...new Set(want)]
      .filter((id) => this.d.roster.mayTrain(id))
      .map((id) =>
        id === this.self
          ? localLink(this.self, this.participant)
          : remoteLink(this.d.reqresp, peerIdFromString(id), this.specs),
      );
  }

  /** Every model entry on the main chain gets its model stored here (a held candidate, or fetched). */
  private async watchChain(events: readonly ChainEvent[]): Promise<void> {
    for (const e of events) {
      if (e.type !== 'block-connected' || !e.node.onMain || this.stopped) continue;
      for (const { payload, author } of await modelEntriesOf(this.d.chain, e.node)) {
        void this.participant
          .modelOnChain(toHex(payload.modelHash))
          .catch((err) => this.log.warn({ err: (err as Error).message }, 'privacy ledger not updated'));
        // Its author stored the version before it signed the entry: asked first, and penalised
        // if it then says it has none.
        this.models
          .resolve(payload.modelHash, this.data.paramCount, author ? [author] : [])
          .catch((err) => this.log.warn({ err: (err as Error).message }, 'model of a block unavailable'));
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.unsubscribe?.();
    await this.runner.stop();
  }
}

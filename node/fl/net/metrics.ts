/** Prometheus metrics of federated learning, on the node's registry. */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ProtocolSpec } from '../../p2p/reqresp.ts';

export function createFlMetrics(registry: Registry) {
  const registers = [registry];
  return {
    rounds: new Counter({
      name: 'cairn_fl_rounds_total',
      help: 'Rounds coordinated by this node, by outcome',
      labelNames: ['outcome'],
      registers,
    }),
    roundsFailed: new Counter({
      name: 'cairn_fl_rounds_failed_total',
      help: 'Rounds coordinated by this node that failed, by reason (aggregate-out-of-range, loss-regressed, …)',
      labelNames: ['reason'],
      registers,
    }),
    rebased: new Counter({
      name: 'cairn_fl_rounds_rebased_total',
      help: 'Rounds this node coordinated from an older version or the initial model because the head’s bytes were unavailable, by basis',
      labelNames: ['basis'],
      registers,
    }),
    roundSeconds: new Histogram({
      name: 'cairn_fl_round_seconds',
      help: 'Duration of coordinated rounds, announce to commit',
      buckets: [0.25, 0.5, 1, 2, 4, 8, 16, 32, 64],
      registers,
    }),
    bytes: new Counter({
      name: 'cairn_fl_bytes_total',
      help: 'Bytes of FL protocol messages (both roles), by direction',
      labelNames: ['direction'],
      registers,
    }),
    rejected: new Counter({
      name: 'cairn_fl_updates_rejected_total',
      help: 'Participant messages rejected by this coordinator, by error code',
      labelNames: ['code'],
      registers,
    }),
    announcementsRefused: new Counter({
      name: 'cairn_fl_announcements_refused_total',
      help: 'Round announcements this node refused, by reason (not-coordinator: the announcer lacks coordinate)',
      labelNames: ['reason'],
      registers,
    }),
    unmaskRefused: new Counter({
      name: 'cairn_fl_unmask_refused_total',
      help: 'Confirm and unmask requests this node refused as a protocol violation of their coordinator, by reason (second-survivor-set, bad-confirmation, too-few-confirmations, …)',
      labelNames: ['reason'],
      registers,
    }),
    secaggRefused: new Counter({
      name: 'cairn_fl_secagg_refused_total',
      help: 'Keys and shares requests this node refused as a protocol violation of their coordinator, by step and reason (asked-twice, roster-too-small, not-a-trainer, bad-advert-signature, …)',
      labelNames: ['step', 'reason'],
      registers,
    }),
    answers: new Counter({
      name: 'cairn_fl_invitations_total',
      help: 'Round invitations answered by this node, by answer',
      labelNames: ['answer'],
      registers,
    }),
    declined: new Counter({
      name: 'cairn_fl_declined_total',
      help: 'Rounds this node declined on privacy grounds, by reason (budget-exhausted, noise-below-floor, mode-not-accepted, …)',
      labelNames: ['reason'],
      registers,
    }),
    announceDeclined: new Counter({
      name: 'cairn_fl_announce_declined_total',
      help: 'Round announcements this node declined as a participant, by reason (busy: it holds as many rounds as it may; busy-coordinator: the announcer holds its share of them, half; privacy: see cairn_fl_declined_total)',
      labelNames: ['reason'],
      registers,
    }),
    roundsEnded: new Counter({
      name: 'cairn_fl_rounds_ended_early_total',
      help: 'Failed rounds this node forgot on its coordinator’s fl-end notice, before their state expired',
      registers,
    }),
    modelPeersDemoted: new Counter({
      name: 'cairn_fl_model_peers_demoted_total',
      help: 'Peers that had served a model and lost their place ahead of the others in model fetches, by why: silent past the hedge time, or a failed or refused answer',
      labelNames: ['why'],
      registers,
    }),
    modelsFetched: new Counter({
      name: 'cairn_fl_models_fetched_total',
      help: 'Model versions fetched from peers by hash, by outcome',
      labelNames: ['outcome'],
      registers,
    }),
    heldModels: new Counter({
      name: 'cairn_fl_models_held_total',
      help: 'Model candidates (committed or announced, not yet named by a main-chain entry) by fate: held in memory, stored once named, evicted, refused (every held candidate outranks it: trained rounds before announcements)',
      labelNames: ['fate'],
      registers,
    }),
    commitsRefused: new Counter({
      name: 'cairn_fl_commits_refused_total',
      help: 'fl-commit requests this node refused, by reason (a decode error code, or untrained: a round this node did not train in)',
      labelNames: ['reason'],
      registers,
    }),
    accuracy: new Gauge({
      name: 'cairn_fl_model_accuracy',
      help: 'Test accuracy of the last model version this node committed',
      registers,
    }),
  };
}
export type FlMetrics = ReturnType<typeof createFlMetrics>;

/**
 * The same spec with its byte traffic counted. A spec serves both roles (a coordinator encodes
 * requests and decodes answers, a participant the reverse), so counting in all four functions
 * counts each message once on each side.
 */
export function counted<Req, Res, Out>(
  spec: ProtocolSpec<Req, Res, Out>,
  bytes: FlMetrics['bytes'],
): ProtocolSpec<Req, Res, Out> {
  const tally = <T>(direction: 'sent' | 'received', b: Uint8Array, v: T): T => {
    bytes.inc({ direction }, b.length);
    return v;
  };
  return {
    ...spec,
    encodeRequest: (r) => {
      const b = spec.encodeRequest(r);
      return tally('sent', b, b);
    },
    decodeRequest: (b) => tally('received', b, spec.decodeRequest(b)),
    encodeResponse: (r) => {
      const b = spec.encodeResponse(r);
      return tally('sent', b, b);
    },
    decodeResponse: (b) => tally('received', b, spec.decodeResponse(b)),
  };
}

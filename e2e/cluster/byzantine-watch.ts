/**
 * What the Byzantine-peer test observes of the node under attack: its "peer penalised" log
 * lines (action, reason, score, verdict), its other log lines, and the Prometheus counters that
 * attacks move.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ACTION_SCORE, type PeerAction } from '../../node/p2p/peer-scores.ts';
import { type ClusterNode, parseMetric } from './harness.ts';

/** A "peer penalised" log line of the node. */
export interface Penalty {
  readonly peer: string;
  readonly action: PeerAction;
  readonly reason: string;
  readonly score: number;
  readonly verdict: 'ok' | 'disconnect' | 'ban';
}

/** A peer as the watch names it. */
export interface Someone {
  readonly name: string;
  readonly peerId: string;
}

/** The counters that attacks move, from a node's /metrics. */
export async function counters(node: ClusterNode) {
  const text = await node.metrics();
  const m = (name: string, labels: Record<string, string> = {}) => parseMetric(text, name, labels) ?? 0;
  const penalty = (action: PeerAction) => m('cairn_peer_penalties_total', { action });
  return {
    fatal: penalty('fatal'),
    low: penalty('low-tolerance'),
    mid: penalty('mid-tolerance'),
    bans: m('cairn_peer_bans_total'),
    blocksAccepted: m('cairn_gossip_messages_total', { topic: 'blocks', result: 'accept' }),
    blocksRejected: m('cairn_gossip_messages_total', { topic: 'blocks', result: 'reject' }),
    sideFromGossip: m('cairn_blocks_processed_total', { outcome: 'side', source: 'gossip' }),
    error: (code: string) => m('cairn_block_validation_errors_total', { code }),
    /** Block validation errors of every code. */
    errors: [...text.matchAll(/^cairn_block_validation_errors_total\{[^}]*\} (\S+)$/gm)].reduce(
      (n, x) => n + Number(x[1]),
      0,
    ),
  };
}
export type Counters = Awaited<ReturnType<typeof counters>>;

export const deltas = (after: Counters, before: Counters) => ({
  accepted: after.blocksAccepted - before.blocksAccepted,
  rejected: after.blocksRejected - before.blocksRejected,
  low: after.low - before.low,
  mid: after.mid - before.mid,
  fatal: after.fatal - before.fatal,
  bans: after.bans - before.bans,
  errors: after.errors - before.errors,
});

/** The listed counters moved by exactly these amounts. */
export function assertDeltas(
  after: Counters,
  before: Counters,
  expected: Partial<ReturnType<typeof deltas>>,
): void {
  const d = deltas(after, before);
  const got = Object.fromEntries(Object.keys(expected).map((k) => [k, d[k as keyof typeof d]]));
  assert.deepEqual(got, expected, `counter changes at the victim: ${JSON.stringify(d)}`);
}

/** The penalty is of `action` and moved the score by its weight from `before` (up to decay toward 0). */
export function assertDrop(p: Penalty, before: number, action: PeerAction): void {
  assert.equal(p.action, action, `action for "${p.reason}"`);
  const expected = Math.max(-100, before + ACTION_SCORE[action]);
  assert.ok(
    p.score >= expected - 0.01 && p.score <= expected + Math.abs(before) * 0.02 + 0.01,
    `score ${p.score} after ${action} from ${before}; expected about ${expected}`,
  );
}

export class VictimWatch {
  /** Every "peer penalised" line, in order. */
  readonly penalties: Penalty[] = [];
  /** Every JSON log line, in order. */
  readonly log: Record<string, unknown>[] = [];

  readonly node: ClusterNode;
  constructor(node: ClusterNode) {
    this.node = node;
    node.onLine((line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      this.log.push(entry);
      if (entry.msg === 'peer penalised') this.penalties.push(entry as unknown as Penalty);
    });
  }

  penaltiesOf = (peer: Someone, since = 0): Penalty[] =>
    this.penalties.slice(since).filter((p) => p.peer === peer.peerId);

  /** The peer's score as last logged (0 before any penalty). */
  lastScore = (peer: Someone): number => this.penaltiesOf(peer).at(-1)?.score ?? 0;

  /** Waits for a penalty of `peer` whose reason matches, among those from index `since` on. */
  waitPenalty = async (
    peer: Someone,
    reason: RegExp,
    since: number,
    timeoutMs = 10_000,
  ): Promise<Penalty> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.penaltiesOf(peer, since).find((p) => reason.test(p.reason));
      if (hit) return hit;
      if (Date.now() > deadline)
        assert.fail(
          `${this.node.name} did not penalise ${peer.name} for ${reason} within ${timeoutMs} ms; ` +
            `its penalties of it since: ${JSON.stringify(this.penaltiesOf(peer, since))}`,
        );
      await sleep(50);
    }
  };

  /** The peer's entry in the node's /status ban list, if any. */
  bannedEntry = async (peer: Someone) =>
    (await this.node.status()).banned.find((b) => b.peer === peer.peerId);

  /** Whether the node logged `msg` about `peer` since log index `since`. */
  logged = (msg: string, peer: Someone, since: number): boolean =>
    this.log.slice(since).some((e) => e.msg === msg && e.peer === peer.peerId);

  /** The node's sync log lines since log index `since`, one string each. */
  syncLog = (since: number): string[] =>
    this.log
      .slice(since)
      .filter((e) => e.part === 'sync')
      .map(({ time, msg, level: _l, part: _p, ...rest }) => `${time} ${msg} ${JSON.stringify(rest)}`);
}

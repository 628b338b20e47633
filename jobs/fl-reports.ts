import { toHex } from '../node/chain/bytes.ts';
import type { ModelPayload } from '../node/chain/types.ts';
import type { FlRoundEvent, ModelVersionEvent } from '../node/fl/net/round-events.ts';
import { weightsToBase64 } from './model-weights.ts';
import type { FlRoundReport, ModelVersionReport } from './payloads.ts';

/** The federated-learning reports a node sends: rounds it coordinates and model versions it sees. */
const iso = (ms: number) => new Date(ms).toISOString();

export function flRoundReport(nodeId: string, e: FlRoundEvent): FlRoundReport {
  return {
    nodeId,
    id: e.id,
    round: e.round,
    status: e.status,
    participants: [...e.participants],
    leftOut: [...e.leftOut],
    dp: { ...e.dp },
    modelHash: e.modelHash,
    error: e.error,
    startedAt: iso(e.startedAt),
    finishedAt: e.finishedAt === null ? null : iso(e.finishedAt),
  };
}

export function modelVersionReport(
  nodeId: string,
  e: ModelVersionEvent,
  blockHash: string | null,
  /** The version's canonical encoding, when the node holds it (the collector archives it). */
  weights?: Uint8Array,
): ModelVersionReport {
  return {
    nodeId,
    hash: e.hash,
    parentHash: e.parentHash,
    round: e.round,
    metrics: { ...e.metrics },
    epsilon: e.epsilon,
    participants: e.participants,
    blockHash,
    at: iso(e.at),
    ...(weights ? { weights: weightsToBase64(weights) } : {}),
  };
}

/** A version as a `model` entry in a block states it; the participant count is one of its metrics. */
export function modelVersionOfEntry(p: ModelPayload, at = Date.now()): ModelVersionEvent {
  const metrics = Object.fromEntries(p.metrics);
  return {
    hash: toHex(p.modelHash),
    parentHash: p.parentHash ? toHex(p.parentHash) : null,
    round: p.round,
    metrics,
    epsilon: p.epsilon,
    participants: Math.max(0, Math.round(metrics.participants ?? 0)),
    at,
  };
}

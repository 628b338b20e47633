/** Signed reports for tests: a node key, its node id, and a queue add that signs like the outbox. */
import type { JobsOptions, Queue } from 'bullmq';
import type { SigningKey } from '../node/chain/signature.ts';
import { testKey } from '../node/testing/forge.ts';
import type { ReportKind } from './queues.ts';
import { nodeIdOfKey, signReport } from './report-envelope.ts';

export const REPORTER_KEY = testKey(900);
/** The collector's receipt key in tests (report-receipt.ts): the rig's collector signs with it. */
export const COLLECTOR_KEY = testKey(901);
/** The node id of REPORTER_KEY: what its reports carry as `nodeId`. */
export const REPORTER_ID = nodeIdOfKey(REPORTER_KEY.publicKey);

/** Adds `report` under `jobId`, signed with `key` (the node's, by default REPORTER_KEY). */
export function addSignedReport(
  queue: Queue,
  kind: ReportKind,
  jobId: string,
  report: object,
  opts: Omit<JobsOptions, 'jobId'> = {},
  key: SigningKey = REPORTER_KEY,
) {
  return queue.add(kind, signReport(kind, jobId, report, key), { ...opts, jobId });
}

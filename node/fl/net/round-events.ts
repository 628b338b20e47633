/**
 * What federated learning tells the rest of the node: a round's progress and outcome, and each
 * new model version. The job worker turns them into reports (jobs/fl-reports.ts); their own
 * module, so the round runner, the service and the jobs import them without importing each other.
 */

export interface FlRoundEvent {
  readonly id: string;
  readonly round: number;
  readonly status: 'running' | 'completed' | 'failed';
  readonly participants: readonly string[];
  readonly leftOut: readonly string[];
  readonly dp: Readonly<Record<string, number>>;
  readonly modelHash: string | null;
  readonly error: string | null;
  readonly startedAt: number;
  readonly finishedAt: number | null;
}

export interface ModelVersionEvent {
  readonly hash: string;
  readonly parentHash: string | null;
  readonly round: number;
  readonly metrics: Readonly<Record<string, number>>;
  readonly epsilon: number;
  readonly participants: number;
  readonly at: number;
}

export interface FlEvents {
  round: [FlRoundEvent];
  version: [ModelVersionEvent];
}

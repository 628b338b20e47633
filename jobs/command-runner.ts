/**
 * The node's side of one admin command job: verify (command-verifier.ts), run through the node's
 * operator surface (node-commands.ts), answer signed and sealed (result-envelope.ts). The args
 * come from the verified command, never from the job's data. A command the node verified
 * completes its job with a signed answer whether it succeeded or failed. A refused job is
 * counted and logged at a bounded rate; it completes with a signed refusal when the refusal is
 * attributable (command-verifier.ts SIGNED_REFUSALS), else it fails unsigned.
 */
import type { Job } from 'bullmq';
import type { Counter } from 'prom-client';
import type { SigningKey } from '../node/chain/signature.ts';
import type { NodeControl } from '../node/control.ts';
import type { Logger } from '../node/log.ts';
import type { RefusalLog } from './command-refusal-log.ts';
import { CommandRefused, type CommandVerifier } from './command-verifier.ts';
import { runAdminCommand } from './node-commands.ts';
import type { AdminCommand } from './queues.ts';
import { type Answer, answerCommand, type ResultJobValue, refuseCommand } from './result-envelope.ts';

export interface CommandRunnerDeps {
  readonly verifier: Pick<CommandVerifier, 'verify'>;
  readonly control: NodeControl;
  /** The node's identity key: the one its peer id names, which the gateway checks answers against. */
  readonly key: SigningKey;
  /** cairn_admin_commands_total{command, outcome}. */
  readonly counter: Pick<Counter<'command' | 'outcome'>, 'inc'>;
  readonly refusals: RefusalLog;
  readonly log: Pick<Logger, 'warn'>;
  readonly reportStats: () => number;
}

/** Runs the admin command `job` carries; `ok` says whether it succeeded (for the job metric). */
export async function runCommandJob(
  job: Pick<Job, 'name' | 'data' | 'id'>,
  d: CommandRunnerDeps,
): Promise<{ answer: ResultJobValue; ok: boolean }> {
  const command = job.name as AdminCommand;
  let cmd: ReturnType<CommandVerifier['verify']>;
  try {
    cmd = d.verifier.verify(job.name, job.data, job.id);
  } catch (err) {
    const code = err instanceof CommandRefused ? err.code : 'malformed';
    d.counter.inc({ command, outcome: code });
    d.refusals.refused(code, 'admin command refused', {
      command,
      job: job.id?.slice(0, 80),
      err: (err as Error).message.slice(0, 256),
    });
    if (err instanceof CommandRefused && err.command && job.id)
      return {
        answer: refuseCommand(err.command, { code: err.code, message: err.detail }, job.id, d.key),
        ok: false,
      };
    throw err;
  }
  let answer: Answer;
  try {
    answer = { completed: await runAdminCommand(d.control, command, cmd.args, d.reportStats) };
    d.counter.inc({ command, outcome: 'ok' });
  } catch (err) {
    d.counter.inc({ command, outcome: 'failed' });
    d.log.warn({ command, job: job.id, err: (err as Error).message }, 'admin command failed');
    answer = { failed: (err as Error).message };
  }
  return { answer: answerCommand(cmd, answer, d.key), ok: 'completed' in answer };
}

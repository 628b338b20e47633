import { GraphQLError } from 'graphql';
import { CommandError } from '../jobs/admin-client.ts';

/**
 * The schema's error convention: fields keep their plain result types and failures are GraphQL
 * errors whose `extensions.code` says what went wrong (see README.md for the list).
 */
export type ErrorCode =
  | 'FORBIDDEN'
  | 'UNAUTHENTICATED'
  | 'BAD_USER_INPUT'
  | 'INVALID_INPUT'
  | 'UNKNOWN_NODE'
  | 'NODE_UNAVAILABLE'
  | 'COMMAND_REFUSED'
  | 'COMMAND_FAILED'
  | 'BAD_RESULT'
  | 'BAD_RESULT_SIGNATURE'
  | 'COMMAND_UNVERIFIED'
  | 'NO_MODEL'
  | 'MODEL_UNAVAILABLE';

export const cairnError = (code: ErrorCode, message: string, extra: Record<string, unknown> = {}) =>
  new GraphQLError(message, { extensions: { code, ...extra } });

export const forbidden = (message: string) => cairnError('FORBIDDEN', message, { http: { status: 403 } });
export const unauthenticated = (message: string) =>
  cairnError('UNAUTHENTICATED', message, { http: { status: 401 } });
export const badInput = (message: string) => cairnError('BAD_USER_INPUT', message);

const COMMAND_CODES: Record<CommandError['code'], ErrorCode> = {
  'invalid-input': 'INVALID_INPUT',
  'unknown-node': 'UNKNOWN_NODE',
  'node-unavailable': 'NODE_UNAVAILABLE',
  refused: 'COMMAND_REFUSED',
  'command-failed': 'COMMAND_FAILED',
  'bad-result': 'BAD_RESULT',
  'bad-result-signature': 'BAD_RESULT_SIGNATURE',
  unverified: 'COMMAND_UNVERIFIED',
};

/** An AdminClient failure as a client-facing error; anything else stays masked by the server. */
export function commandError(err: unknown, nodeId: string, command: string): unknown {
  if (err instanceof CommandError)
    return cairnError(COMMAND_CODES[err.code], err.message, {
      nodeId,
      command,
      ...(err.refusal ? { refusal: err.refusal } : {}),
      ...(err.resultRefusal ? { reason: err.resultRefusal } : {}),
      ...(err.claimedRefusal ? { claimedRefusal: err.claimedRefusal } : {}),
    });
  return err;
}

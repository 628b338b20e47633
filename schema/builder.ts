import SchemaBuilder from '@pothos/core';
import ErrorsPlugin from '@pothos/plugin-errors';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import { GraphQLError, Kind } from 'graphql';
import type { AdminClient } from '../jobs/admin-client.ts';
import type { IndexDb } from '../jobs/index-db/open.ts';
import type { CairnPubSub } from '../jobs/pubsub.ts';
import type { ReadCache } from './cache.ts';
import { forbidden } from './errors.ts';

export type Role = 'admin' | 'operator' | 'viewer';
export const ROLES: readonly Role[] = ['admin', 'operator', 'viewer'];

/** What every resolver sees. The gateway builds one per HTTP request / graphql-ws subscription. */
export interface CairnContext {
  db: IndexDb;
  pubsub: CairnPubSub;
  admin: AdminClient;
  /** The caller's role from a verified bearer token; null for anonymous callers. */
  role: Role | null;
  /** When true, reads and subscriptions need at least a viewer token (default: open). */
  requireViewer?: boolean;
  /** How long a mutation waits for the node to answer its admin command (default 30 s). */
  adminTimeoutMs?: number;
  /** Short-lived shared cache of hot reads, invalidated by subscription events (optional). */
  cache?: ReadCache;
}

export const builder = new SchemaBuilder<{
  Context: CairnContext;
  Scalars: { DateTime: { Input: Date; Output: Date | string } };
  AuthScopes: { admin: boolean; operator: boolean; viewer: boolean; reader: boolean };
  DefaultFieldNullability: false;
}>({
  plugins: [ScopeAuthPlugin, RelayPlugin, ErrorsPlugin],
  defaultFieldNullability: false,
  scopeAuth: {
    // A subscription is authorized once, when it starts, not on every event.
    authorizeOnSubscribe: true,
    // Roles are ordered: admin ⊃ operator ⊃ viewer.
    authScopes: (ctx) => ({
      admin: ctx.role === 'admin',
      operator: ctx.role === 'admin' || ctx.role === 'operator',
      viewer: ctx.role !== null,
      reader: ctx.role !== null || !ctx.requireViewer,
    }),
    unauthorizedError: (_parent, ctx, info) =>
      forbidden(
        ctx.role === null
          ? `Not authorized: ${info.parentType.name}.${info.fieldName} is forbidden without a token`
          : `Not authorized: ${info.parentType.name}.${info.fieldName} is forbidden for role ${ctx.role}`,
      ),
  },
  relay: {
    // The schema's own `Node` type is a Cairn peer; the Relay interface and its lookups are unused.
    nodeTypeOptions: { name: 'RelayNode' },
    nodeQueryOptions: false,
    nodesQueryOptions: false,
    clientMutationId: 'omit',
    cursorType: 'String',
  },
  errors: { defaultTypes: [] },
});

const toIso = (value: unknown): string => {
  const d = value instanceof Date ? value : new Date(value as string | number);
  if (Number.isNaN(d.getTime())) throw new GraphQLError(`DateTime cannot represent ${String(value)}`);
  return d.toISOString();
};

/** ISO-8601 instant. Serializes Prisma Dates and event payloads' ISO strings alike. */
builder.scalarType('DateTime', {
  description: 'An ISO-8601 instant in UTC, e.g. 2025-01-31T12:00:00.000Z.',
  serialize: toIso,
  parseValue: (value) => new Date(toIso(value)),
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.STRING) throw new GraphQLError('DateTime literal must be a string');
    return new Date(toIso(ast.value));
  },
});

builder.queryType({ authScopes: { reader: true } });
builder.mutationType({});
builder.subscriptionType({ authScopes: { reader: true } });

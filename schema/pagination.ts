import { badInput } from './errors.ts';

/** Largest page any list or connection returns; larger requests are refused, not clamped. */
export const MAX_PAGE_SIZE = 100;
const DEFAULT_PAGE_SIZE = 20;

export interface ConnectionArgs {
  first?: number | null;
  last?: number | null;
  after?: string | null;
  before?: string | null;
}

export interface KeyField<Row> {
  readonly field: keyof Row & string;
  /** Direction of the connection's main ordering on this field. */
  readonly desc: boolean;
  readonly kind: 'string' | 'int' | 'date';
}

type Where = Record<string, unknown>;

export interface Connection<Row> {
  edges: { cursor: string; node: Row }[];
  pageInfo: {
    hasNextPage: boolean;
    hasPreviousPage: boolean;
    startCursor: string | null;
    endCursor: string | null;
  };
}

export function checkPageSize(name: string, n: number | null | undefined, max = MAX_PAGE_SIZE): void {
  if (n == null) return;
  if (!Number.isInteger(n) || n < 0 || n > max)
    throw badInput(`"${name}" must be an integer between 0 and ${max} (got ${n})`);
}

const encodeCursor = (values: unknown[]) => Buffer.from(JSON.stringify(values)).toString('base64url');

function decodeCursor<Row>(cursor: string, keys: readonly KeyField<Row>[]): unknown[] {
  let values: unknown;
  try {
    values = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw badInput(`invalid cursor ${JSON.stringify(cursor)}`);
  }
  if (!Array.isArray(values) || values.length !== keys.length) throw badInput(`invalid cursor ${cursor}`);
  return keys.map((k, i) => {
    const v = values[i];
    if (k.kind === 'int' && Number.isInteger(v)) return v;
    if (k.kind === 'string' && typeof v === 'string') return v;
    if (k.kind === 'date' && typeof v === 'string' && !Number.isNaN(Date.parse(v))) return new Date(v);
    throw badInput(`invalid cursor ${cursor}`);
  });
}

/**
 * Rows strictly after (`side` = 'after') or before the key in the main ordering: the usual
 * keyset predicate (k0 > v0) OR (k0 = v0 AND k1 > v1) …, with > and < swapped per direction.
 */
function keyset<Row>(keys: readonly KeyField<Row>[], values: unknown[], side: 'after' | 'before'): Where {
  const or: Where[] = keys.map((k, i) => {
    const and: Where = {};
    for (let j = 0; j < i; j++) and[keys[j]!.field] = values[j];
    const forward = side === 'after' ? !k.desc : k.desc;
    and[k.field] = { [forward ? 'gt' : 'lt']: values[i] };
    return and;
  });
  return or.length === 1 ? or[0]! : { OR: or };
}

/**
 * A Relay connection over a keyset (stable under inserts, unlike offsets). `fetch` runs the
 * query with the given filter, ordering and row limit.
 */
export async function keysetConnection<Row>(
  args: ConnectionArgs,
  keys: readonly KeyField<Row>[],
  fetch: (q: { where: Where; orderBy: Record<string, 'asc' | 'desc'>[]; take: number }) => Promise<Row[]>,
  maxSize = MAX_PAGE_SIZE,
): Promise<Connection<Row>> {
  checkPageSize('first', args.first, maxSize);
  checkPageSize('last', args.last, maxSize);
  if (args.first != null && args.last != null) throw badInput('use either "first" or "last", not both');
  const inverted = args.last != null;
  const size = args.first ?? args.last ?? DEFAULT_PAGE_SIZE;
  const and: Where[] = [];
  if (args.after) and.push(keyset(keys, decodeCursor(args.after, keys), 'after'));
  if (args.before) and.push(keyset(keys, decodeCursor(args.before, keys), 'before'));
  const orderBy = keys.map((k) => ({ [k.field]: k.desc !== inverted ? 'desc' : 'asc' }) as const);
  const rows =
    size === 0 ? [] : await fetch({ where: and.length ? { AND: and } : {}, orderBy, take: size + 1 });
  const more = rows.length > size;
  const page = rows.slice(0, size);
  if (inverted) page.reverse();
  const edges = page.map((node) => ({
    cursor: encodeCursor(
      keys.map((k) => {
        const v = node[k.field] as unknown;
        return v instanceof Date ? v.toISOString() : v;
      }),
    ),
    node,
  }));
  return {
    edges,
    pageInfo: {
      // Without a cursor on the far side we only know there is more in the direction we read.
      hasNextPage: inverted ? Boolean(args.before) : more,
      hasPreviousPage: inverted ? more : Boolean(args.after),
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
  };
}

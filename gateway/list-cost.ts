/**
 * A cost limit that counts what an answer can hold. graphql-armor's cost limit weighs fields by
 * depth but not by list size, so `blocks(fromHeight: 0, toHeight: 99) { entries { content } }`
 * aliased 30 times (up to 3 million entries, gigabytes of text) passes it. This rule counts the
 * objects an operation may return: a list field multiplies the cost of its selection by the
 * page it asks for (`first`/`last`, a height range, a `last` default) or by the list's bound
 * (entries per block), and a page given as a variable counts as the largest page allowed.
 * It runs at validation, before any resolver.
 */
import {
  type ArgumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  GraphQLError,
  type GraphQLField,
  type GraphQLNamedType,
  getNamedType,
  getNullableType,
  isAbstractType,
  isListType,
  isObjectType,
  Kind,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';
import { DEFAULT_NETWORK } from '../node/chain/network-config.ts';
import { MAX_PAGE_SIZE } from '../schema/pagination.ts';

export interface ListCostOptions {
  /** Most objects one operation may return (default DEFAULT_MAX_LIST_COST). */
  readonly maxCost: number;
  /** Size assumed for a list without a page argument or a known bound. */
  readonly defaultListSize?: number;
  /** Called on each refusal (the gateway counts them). */
  readonly onRefuse?: () => void;
}

/**
 * 20,000 objects: the console's largest documents (a block with its up to 1,000 entries, the
 * overview's 120-point history and 60 blocks) stay far below; ten blocks with their entries do not.
 */
export const DEFAULT_MAX_LIST_COST = 20_000;

/** Lists whose size is a bound of the data, not an argument. */
const BOUNDED_LISTS: Readonly<Record<string, number>> = {
  'Block.entries': DEFAULT_NETWORK.maxEntriesPerBlock,
};

/** Largest value of a `last` argument on the stats lists (schema/stats.ts, schema/nodes.ts). */
const MAX_HISTORY = 1000;
/** Connections' page when neither first nor last is given (schema/pagination.ts). */
const DEFAULT_PAGE = 20;

const intArg = (args: readonly ArgumentNode[] | undefined, name: string): number | 'variable' | undefined => {
  const a = args?.find((x) => x.name.value === name);
  if (!a) return undefined;
  if (a.value.kind === Kind.INT) return Number(a.value.value);
  if (a.value.kind === Kind.VARIABLE) return 'variable';
  return undefined;
};

/** How many items a list field may return, from its arguments and the schema. */
function listSize(
  coordinate: string,
  def: GraphQLField<unknown, unknown>,
  node: FieldNode,
  fallback: number,
): number {
  const bounded = BOUNDED_LISTS[coordinate];
  if (bounded !== undefined) return bounded;
  const connection = getNamedType(def.type).name.endsWith('Connection');
  const pageMax = connection ? MAX_PAGE_SIZE : MAX_HISTORY;
  for (const name of ['first', 'last']) {
    const v = intArg(node.arguments, name);
    if (v === 'variable') return pageMax;
    if (v !== undefined) return Math.max(0, v);
  }
  const from = intArg(node.arguments, 'fromHeight');
  const to = intArg(node.arguments, 'toHeight');
  if (from !== undefined || to !== undefined)
    return typeof from === 'number' && typeof to === 'number' ? Math.max(0, to - from + 1) : MAX_PAGE_SIZE;
  if (connection) return DEFAULT_PAGE;
  const last = def.args.find((a) => a.name === 'last')?.defaultValue;
  if (typeof last === 'number') return last;
  return fallback;
}

/** Objects the operation may return (scalars are free: the objects carry them). */
export function listCost(
  context: ValidationContext,
  selectionSet: SelectionSetNode,
  parent: GraphQLNamedType,
  fallback: number,
  fragments: ReadonlySet<string> = new Set(),
): number {
  let cost = 0;
  for (const sel of selectionSet.selections) {
    if (sel.kind === Kind.FRAGMENT_SPREAD) {
      const name = sel.name.value;
      // A cycle is another rule's error; here it only must not loop.
      if (fragments.has(name)) continue;
      const frag: FragmentDefinitionNode | null | undefined = context.getFragment(name);
      const on = frag && context.getSchema().getType(frag.typeCondition.name.value);
      if (frag && on)
        cost += listCost(context, frag.selectionSet, on, fallback, new Set([...fragments, name]));
      continue;
    }
    if (sel.kind === Kind.INLINE_FRAGMENT) {
      const on = sel.typeCondition ? context.getSchema().getType(sel.typeCondition.name.value) : parent;
      if (on) cost += listCost(context, sel.selectionSet, on, fallback, fragments);
      continue;
    }
    if (sel.name.value.startsWith('__') || !sel.selectionSet) continue;
    if (!isObjectType(parent) && !isAbstractType(parent)) continue;
    const def = isObjectType(parent) ? parent.getFields()[sel.name.value] : undefined;
    if (!def) continue;
    const child = getNamedType(def.type);
    const inner = 1 + listCost(context, sel.selectionSet, child, fallback, fragments);
    // A connection's edges are the page its field already counted.
    const list = isListType(getNullableType(def.type)) && !parent.name.endsWith('Connection');
    const connection = child.name.endsWith('Connection');
    cost += list || connection ? listSize(`${parent.name}.${def.name}`, def, sel, fallback) * inner : inner;
  }
  return cost;
}

export function listCostRule(options: ListCostOptions): ValidationRule {
  const fallback = options.defaultListSize ?? MAX_PAGE_SIZE;
  return (context) => ({
    OperationDefinition(op) {
      const root = context.getSchema().getRootType(op.operation);
      if (!root) return;
      const cost = listCost(context, op.selectionSet, root, fallback);
      if (cost <= options.maxCost) return;
      options.onRefuse?.();
      context.reportError(
        new GraphQLError(
          `Query list cost limit of ${options.maxCost} exceeded: the answer could hold ${cost} objects (lists count by their page size)`,
          { nodes: [op] },
        ),
      );
    },
  });
}

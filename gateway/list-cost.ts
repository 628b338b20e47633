/**
 * A cost limit that counts what an answer can hold, in two measures, before any resolver runs:
 *
 * - objects: a list field multiplies the cost of its selection by the page it asks for
 *   (`first`/`last`, a height range, a `last` default) or by the list's bound (entries per
 *   block), and a page given as a variable counts as the largest page allowed. This bounds the
 *   rows and resolver calls one operation makes the server do.
 * - bytes: every field weighs what its value can take in the JSON answer (a number a dozen
 *   bytes, a hash 66, an entry's content its 32 KiB bound), multiplied by the same list sizes.
 *   Objects alone gave text no weight: 19 blocks with all their entries' text (19,019 objects,
 *   up to 2.5 GB of text by the per-entry bounds) passed a limit of 20,000 objects.
 *
 * graphql-armor's cost limit weighs fields by depth but by neither list size nor field size, and
 * graphql-query-complexity is not a dependency; so this is a rule of our own. Both measures are
 * upper bounds from the schema's and the chain's limits, never from the data.
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
  isInterfaceType,
  isListType,
  isObjectType,
  Kind,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';
import { HEADER_BYTES } from '../node/chain/block-codec.ts';
import { DEFAULT_NETWORK } from '../node/chain/network-config.ts';
import { LIMITS } from '../node/chain/types.ts';
import { INVITATION_LIMITS } from '../node/membership/invitation.ts';
import { CAPABILITIES } from '../node/membership/view.ts';
import { MAX_PAGE_SIZE } from '../schema/pagination.ts';

export interface ListCostOptions {
  /** Most objects one operation may return (default DEFAULT_MAX_LIST_COST). */
  readonly maxCost: number;
  /** Most bytes its answer may take by the fields' size bounds (default DEFAULT_MAX_ANSWER_BYTES). */
  readonly maxBytes?: number;
  /** Size assumed for a list without a page argument or a known bound. */
  readonly defaultListSize?: number;
  /** Called on each refusal with the measure that was over (the gateway counts them). */
  readonly onRefuse?: (measure: 'objects' | 'bytes') => void;
}

/**
 * 20,000 objects: the console's largest documents (a block with its up to 1,000 entries, the
 * overview's 120-point history and 60 blocks) stay far below; ten blocks with their entries do not.
 */
export const DEFAULT_MAX_LIST_COST = 20_000;

/**
 * 16 MiB by the size bounds: the console's largest documents, one block with all its entries'
 * text (2.5 MiB: a block holds 1 MiB of entries, counted once for `content` and once for
 * `payload`) and the nodes page with addresses and peer lists (7.9 MiB at the collector's bounds
 * of 64 addresses and 1,000 peers a node), pass with room; 19 blocks with their text (43 MiB) do
 * not, nor eight (a range's entries with id, content, payload and signature: 2.2 MiB a block).
 */
export const DEFAULT_MAX_ANSWER_BYTES = 16 * 1024 * 1024;

/** Lists whose size is a bound of the data, not an argument (bounds of jobs/payloads.ts). */
const BOUNDED_LISTS: Readonly<Record<string, number>> = {
  'Block.entries': DEFAULT_NETWORK.maxEntriesPerBlock,
  'Node.addrs': 64,
  'Node.peers': 1000,
  'Node.capabilities': 16,
  'RosterMember.capabilities': CAPABILITIES.length,
  'FlRound.participants': 1000,
  'FlRound.leftOut': 1000,
  'Query.members': 10_000,
  // A knowledge entry's metadata pairs, and the highlights schema/entry-search.ts returns at most.
  'Entry.metadata': LIMITS.metadataPairs,
  'Entry.highlights': 100,
  'Query.topics': 100,
  // schema/fl-privacy.ts MAX_FL_PRIVACY_NODES.
  'Query.flPrivacy': 1000,
  // schema/messaging.ts MAX_MESSAGING_NODES.
  'Query.messagingStats': 1000,
};

/**
 * Lists whose items' text together is bounded by the data: a block's entries are at most the
 * block's bytes, so `entries { content }` weighs that once, not 1,000 times the 32 KiB an entry
 * may hold. Only the fields of TEXT_BYTES share the budget; the rest count per item.
 */
const TEXT_BUDGETS: Readonly<Record<string, number>> = {
  'Block.entries': DEFAULT_NETWORK.maxBlockBytes,
};

/** Bytes of a value by its type, when the field has no bound of its own (quotes included). */
const SCALAR_BYTES: Readonly<Record<string, number>> = {
  Int: 11,
  Float: 24,
  Boolean: 5,
  DateTime: 26,
  // Most strings are hashes (66 with quotes), peer ids, decimals (≤ 80 digits) or short words.
  String: 82,
  ID: 82,
};

/** Fields whose values may be far longer than a short string (their bounds in the chain and jobs). */
const TEXT_BYTES: Readonly<Record<string, number>> = {
  'Entry.content': LIMITS.contentBytes,
  'Entry.payload': LIMITS.entryBytes,
  'Entry.signature': 130,
  'Block.signature': 130,
  'Block.header': 2 * HEADER_BYTES + 2,
  'NetworkConfig.config': 16 * 1024,
  'ModelVersion.metrics': 2048,
  'FlRound.dp': 2048,
  'FlRound.error': 2048,
  'InviteDeviceResult.invitation': INVITATION_LIMITS.encodedChars + 2,
  'Node.addrs': 514,
  'Node.capabilities': 34,
  'RosterMember.name': 66,
  'RosterMember.role': 12,
  'RosterMember.capabilities': 14,
  'RosterMember.state': 10,
  'RosterMember.issuedAt': 26,
  'RosterMember.expiresAt': 26,
  'Node.peers': 130,
  'MetadataPair.key': LIMITS.keyBytes + 2,
  'MetadataPair.value': LIMITS.valueBytes + 2,
  'Topic.value': LIMITS.valueBytes + 2,
  'FlRound.participants': 130,
  'FlRound.leftOut': 130,
};

/** An object's braces, a field's quoted name, colon and comma. */
const OBJECT_BYTES = 2;
const nameBytes = (responseName: string) => responseName.length + 4;

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

/** What a selection set may produce: objects, bytes, and the TEXT_BYTES fields' bytes apart. */
export interface AnswerCost {
  objects: number;
  /** Bytes of everything but `text`. */
  bytes: number;
  /** Bytes of each TEXT_BYTES field selected directly here, one number per response field. */
  text: number[];
}

/** The most a selection set may produce, by page sizes and field bounds. */
export function answerCost(
  context: ValidationContext,
  selectionSet: SelectionSetNode,
  parent: GraphQLNamedType,
  fallback: number,
  fragments: ReadonlySet<string> = new Set(),
): AnswerCost {
  const cost: AnswerCost = { objects: 0, bytes: 0, text: [] };
  const add = (c: AnswerCost) => {
    cost.objects += c.objects;
    cost.bytes += c.bytes;
    cost.text.push(...c.text);
  };
  for (const sel of selectionSet.selections) {
    if (sel.kind === Kind.FRAGMENT_SPREAD) {
      const name = sel.name.value;
      // A cycle is another rule's error; here it only must not loop.
      if (fragments.has(name)) continue;
      const frag: FragmentDefinitionNode | null | undefined = context.getFragment(name);
      const on = frag && context.getSchema().getType(frag.typeCondition.name.value);
      if (frag && on)
        add(answerCost(context, frag.selectionSet, on, fallback, new Set([...fragments, name])));
      continue;
    }
    if (sel.kind === Kind.INLINE_FRAGMENT) {
      const on = sel.typeCondition ? context.getSchema().getType(sel.typeCondition.name.value) : parent;
      if (on) add(answerCost(context, sel.selectionSet, on, fallback, fragments));
      continue;
    }
    const responseName = sel.alias?.value ?? sel.name.value;
    if (sel.name.value === '__typename') {
      cost.bytes += nameBytes(responseName) + parent.name.length + 2;
      continue;
    }
    // __schema and __type: bounded by the schema (and refused in production).
    if (sel.name.value.startsWith('__')) continue;
    if (!isObjectType(parent) && !isInterfaceType(parent)) continue;
    const def = parent.getFields()[sel.name.value];
    if (!def) continue;
    const coordinate = `${parent.name}.${def.name}`;
    const child = getNamedType(def.type);
    // A connection's edges are the page its field already counted.
    const list = isListType(getNullableType(def.type)) && !parent.name.endsWith('Connection');
    const connection = child.name.endsWith('Connection');
    const n = list || connection ? listSize(coordinate, def, sel, fallback) : 1;
    const key = nameBytes(responseName);
    if (!sel.selectionSet) {
      // A scalar, or a list of them (addresses, peer ids): each item its bound, plus a comma.
      const text = TEXT_BYTES[coordinate];
      const item = (text ?? SCALAR_BYTES[child.name] ?? SCALAR_BYTES.String!) + (list ? 1 : 0);
      if (text !== undefined && !list) {
        cost.bytes += key;
        cost.text.push(item);
      } else cost.bytes += key + n * item;
      continue;
    }
    const inner = answerCost(context, sel.selectionSet, child, fallback, fragments);
    const perItemText = inner.text.reduce((a, b) => a + b, 0);
    const budget = list ? TEXT_BUDGETS[coordinate] : undefined;
    cost.objects += n * (1 + inner.objects);
    cost.bytes +=
      key +
      n * (OBJECT_BYTES + inner.bytes) +
      (budget === undefined
        ? n * perItemText
        : inner.text.reduce((sum, t) => sum + Math.min(n * t, budget), 0));
  }
  return cost;
}

/** Objects the operation may return (kept for callers that count objects only). */
export function listCost(
  context: ValidationContext,
  selectionSet: SelectionSetNode,
  parent: GraphQLNamedType,
  fallback: number,
): number {
  return answerCost(context, selectionSet, parent, fallback).objects;
}

const MiB = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

export function listCostRule(options: ListCostOptions): ValidationRule {
  const fallback = options.defaultListSize ?? MAX_PAGE_SIZE;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_ANSWER_BYTES;
  return (context) => ({
    OperationDefinition(op) {
      const root = context.getSchema().getRootType(op.operation);
      if (!root) return;
      const cost = answerCost(context, op.selectionSet, root, fallback);
      const bytes = cost.bytes + cost.text.reduce((a, b) => a + b, 0);
      if (cost.objects > options.maxCost) {
        options.onRefuse?.('objects');
        context.reportError(
          new GraphQLError(
            `Query list cost limit of ${options.maxCost} exceeded: the answer could hold ${cost.objects} objects (lists count by their page size)`,
            { nodes: [op] },
          ),
        );
      } else if (bytes > maxBytes) {
        options.onRefuse?.('bytes');
        context.reportError(
          new GraphQLError(
            `Query answer size limit of ${MiB(maxBytes)} exceeded: the answer could take ${MiB(bytes)} (each field counts by its size bound, lists by their page size; ask for fewer blocks or fields)`,
            { nodes: [op] },
          ),
        );
      }
    },
  });
}

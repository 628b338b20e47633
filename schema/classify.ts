/**
 * `classify(text, version)`: a model version's verdict on a text, from the weights the collector
 * archived (jobs/model-weights.ts), scored by the same code the nodes use (node/fl/classify.ts),
 * so the gateway, a node's API and its CLI agree for the same version. Without `version`, the
 * newest version committed on the canonical chain: what a node at the tip classifies with.
 */
import { type Hex, toHex } from '../node/chain/bytes.ts';
import { checkText, classifyText, MAX_CLASSIFY_CHARS } from '../node/fl/classify.ts';
import type { Params } from '../node/fl/logistic.ts';
import { decodeModel, modelHash } from '../node/fl/net/model-codec.ts';
import { builder, type CairnContext } from './builder.ts';
import { badInput, cairnError } from './errors.ts';

/** classify fields one operation may run: each featurises up to MAX_CLASSIFY_CHARS of text. */
export const MAX_CLASSIFY_PER_OPERATION = 4;
/** Decoded versions this gateway keeps (each 2^14 + 1 float64s, 128 KiB at the default width). */
const CACHED_VERSIONS = 8;

interface ClassificationShape {
  readonly version: string;
  readonly round: number;
  readonly spam: boolean;
  readonly score: number;
}

const ClassificationRef = builder.objectRef<ClassificationShape>('Classification').implement({
  description: "A model version's verdict on a text.",
  fields: (t) => ({
    version: t.exposeString('version', { description: "The model version's hash." }),
    round: t.exposeInt('round'),
    spam: t.exposeBoolean('spam', { description: 'score ≥ 0.5' }),
    score: t.exposeFloat('score', { description: 'P(spam) under the model, in [0, 1].' }),
  }),
});

/** Decoded archived weights by index DB and version hash; a failed or missing load is not kept. */
const decodedByDb = new WeakMap<CairnContext['db'], Map<Hex, Promise<Params | undefined>>>();

async function loadWeights(ctx: CairnContext, hash: Hex): Promise<Params | undefined> {
  const decoded = decodedByDb.get(ctx.db) ?? new Map<Hex, Promise<Params | undefined>>();
  decodedByDb.set(ctx.db, decoded);
  let p = decoded.get(hash);
  if (!p) {
    p = ctx.db.modelWeights.findUnique({ where: { hash } }).then((row) => {
      if (!row) return undefined;
      const bytes = new Uint8Array(row.bytes);
      // The collector checked the hash on the way in; checked again, as a corrupt row must not classify.
      if (toHex(modelHash(bytes)) !== hash) throw new Error(`archived weights of ${hash} do not match it`);
      return decodeModel(bytes);
    });
    decoded.set(hash, p);
    const forget = () => decoded.get(hash) === p && decoded.delete(hash);
    p.then((v) => v === undefined && forget(), forget);
    while (decoded.size > CACHED_VERSIONS) decoded.delete(decoded.keys().next().value!);
  }
  return p;
}

/**
 * The version to classify with, as the canonical chain commits it: the newest `model` entry of
 * the indexed canonical blocks (whose entries the collector verified: signatures, roster, model
 * head), or the one committing `hash`. Never a version only some node's report names: a report
 * can claim any hash and round, a block entry cannot.
 */
async function committedVersion(
  ctx: CairnContext,
  hash?: Hex,
): Promise<{ hash: Hex; round: number } | undefined> {
  const entry = await ctx.db.entry.findFirst({
    where: {
      kind: 'model',
      block: { canonical: true },
      ...(hash ? { payload: { contains: `"modelHash":"${hash}"` } } : {}),
    },
    orderBy: [{ block: { height: 'desc' } }, { position: 'desc' }],
    select: { payload: true },
  });
  if (!entry) return undefined;
  const p = JSON.parse(entry.payload) as { modelHash: string; round: number };
  return { hash: p.modelHash, round: p.round };
}

/** Operations' classify counts: the context object is one per operation. */
const perOperation = new WeakMap<CairnContext, number>();

builder.queryFields((t) => ({
  classify: t.field({
    type: ClassificationRef,
    description: `Spam or not, by a model version (default: the newest committed one). Text of at most ${MAX_CLASSIFY_CHARS} characters; at most ${MAX_CLASSIFY_PER_OPERATION} per operation.`,
    args: {
      text: t.arg.string({ required: true }),
      version: t.arg.string({ description: "A model version's hash (64 hex)." }),
    },
    resolve: async (_, args, ctx) => {
      const n = (perOperation.get(ctx) ?? 0) + 1;
      perOperation.set(ctx, n);
      if (n > MAX_CLASSIFY_PER_OPERATION)
        throw badInput(`at most ${MAX_CLASSIFY_PER_OPERATION} classify fields per operation`);
      try {
        checkText(args.text);
      } catch (err) {
        throw badInput((err as Error).message);
      }
      if (args.version != null && !/^[0-9a-f]{64}$/.test(args.version))
        throw badInput('version must be a model hash: 64 lowercase hex characters');
      const row = await committedVersion(ctx, args.version ?? undefined);
      if (!row)
        throw cairnError(
          'NO_MODEL',
          args.version != null
            ? `no model version ${args.version} is committed on the canonical chain`
            : 'no model version is committed yet',
        );
      const params = await loadWeights(ctx, row.hash);
      if (!params)
        throw cairnError(
          'MODEL_UNAVAILABLE',
          `the weights of model version ${row.hash} are not archived yet`,
        );
      return { version: row.hash, round: row.round, ...classifyText(params, args.text) };
    },
  }),
}));

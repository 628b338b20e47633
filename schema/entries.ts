import { builder } from './builder.ts';
import type { EntryShape } from './shapes.ts';

/** The knowledge text of an entry, or null for model/config entries and unparsable payloads. */
function knowledgeContent(payload: string): string | null {
  try {
    const p = JSON.parse(payload) as { kind?: unknown; content?: unknown };
    return p.kind === 'knowledge' && typeof p.content === 'string' ? p.content : null;
  } catch {
    return null;
  }
}

export const EntryRef = builder.objectRef<EntryShape>('Entry').implement({
  description: 'A signed entry inside a block (knowledge, model commitment or config change).',
  fields: (t) => ({
    id: t.exposeString('id'),
    blockHash: t.exposeString('blockHash'),
    position: t.exposeInt('position'),
    kind: t.exposeString('kind', { description: "'knowledge' | 'model' | 'config'" }),
    author: t.exposeString('author', { description: 'Ed25519 public key of the author, hex.' }),
    timestamp: t.expose('timestamp', { type: 'DateTime' }),
    payload: t.exposeString('payload', { description: 'The payload as JSON text.' }),
    signature: t.exposeString('signature'),
    content: t.string({
      nullable: true,
      description: 'The knowledge content for knowledge entries, otherwise null.',
      resolve: (e) => knowledgeContent(e.payload),
    }),
  }),
});

builder.queryField('entry', (t) =>
  t.field({
    type: EntryRef,
    nullable: true,
    description: 'An entry by id; the copy in a canonical block when it was mined more than once.',
    args: { id: t.arg.string({ required: true }) },
    resolve: async (_, { id }, ctx) =>
      (await ctx.db.entry.findFirst({ where: { id, block: { canonical: true } } })) ??
      ctx.db.entry.findFirst({ where: { id } }),
  }),
);

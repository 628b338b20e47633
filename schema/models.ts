import { builder } from './builder.ts';
import { keysetConnection, MAX_PAGE_SIZE } from './pagination.ts';
import { type FlRoundShape, jsonStrings, type ModelVersionShape } from './shapes.ts';

export const ModelVersionRef = builder.objectRef<ModelVersionShape>('ModelVersion').implement({
  description: 'A committed model version (content-addressed).',
  fields: (t) => ({
    hash: t.exposeString('hash'),
    parentHash: t.exposeString('parentHash', { nullable: true }),
    round: t.exposeInt('round'),
    metrics: t.exposeString('metrics', { description: 'JSON object of metric name → value.' }),
    accuracy: t.exposeFloat('accuracy', { nullable: true }),
    epsilon: t.exposeFloat('epsilon', { description: 'Differential-privacy budget spent.' }),
    participants: t.exposeInt('participants'),
    blockHash: t.exposeString('blockHash', {
      nullable: true,
      description: 'The block that commits it, once mined.',
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

const FlRoundRef = builder.objectRef<FlRoundShape>('FlRound').implement({
  description: 'One federated-learning round as its coordinator reported it.',
  fields: (t) => ({
    id: t.exposeString('id'),
    round: t.exposeInt('round'),
    coordinator: t.exposeString('coordinator'),
    status: t.exposeString('status', { description: "'running' | 'completed' | 'failed'" }),
    participants: t.stringList({ resolve: (r) => jsonStrings(r.participants) }),
    leftOut: t.stringList({ resolve: (r) => jsonStrings(r.leftOut) }),
    dp: t.exposeString('dp', { description: 'JSON of the DP parameters.' }),
    modelHash: t.exposeString('modelHash', { nullable: true }),
    error: t.exposeString('error', { nullable: true }),
    startedAt: t.expose('startedAt', { type: 'DateTime' }),
    finishedAt: t.expose('finishedAt', { type: 'DateTime', nullable: true }),
  }),
});

builder.queryFields((t) => ({
  modelVersions: t.connection(
    {
      type: ModelVersionRef,
      description: `Model versions, newest round first; pages of at most ${MAX_PAGE_SIZE}.`,
      resolve: (_, args, ctx) =>
        keysetConnection<ModelVersionShape>(
          args,
          [
            { field: 'round', desc: true, kind: 'int' },
            { field: 'hash', desc: true, kind: 'string' },
          ],
          (q) => ctx.db.modelVersion.findMany(q),
        ),
    },
    { name: 'ModelVersionConnection' },
    { name: 'ModelVersionEdge' },
  ),
  flRounds: t.connection(
    {
      type: FlRoundRef,
      description: `Federated-learning rounds, most recently started first; pages of at most ${MAX_PAGE_SIZE}.`,
      resolve: (_, args, ctx) =>
        keysetConnection<FlRoundShape>(
          args,
          [
            { field: 'startedAt', desc: true, kind: 'date' },
            { field: 'id', desc: true, kind: 'string' },
          ],
          (q) => ctx.db.flRound.findMany(q),
        ),
    },
    { name: 'FlRoundConnection' },
    { name: 'FlRoundEdge' },
  ),
}));

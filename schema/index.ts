import { lexicographicSortSchema } from 'graphql';
import { builder } from './builder.ts';
import './blocks.ts';
import './entries.ts';
import './stats.ts';
import './nodes.ts';
import './orphans.ts';
import './models.ts';
import './classify.ts';
import './fl-privacy.ts';
import './messaging.ts';
import './config.ts';
import './meta.ts';
import './mutations.ts';
import './subscriptions.ts';
import './search.ts';

export type { CairnContext, Role } from './builder.ts';
export { ROLES } from './builder.ts';
export type { ReadCache } from './cache.ts';

/** The Cairn gateway schema (all areas registered above). */
export const schema = builder.toSchema();
/** The same schema with types and fields sorted, for the committed SDL. */
export const sortedSchema = lexicographicSortSchema(schema);

/**
 * A bound on how deeply a request's variables nest. graphql-js coerces declared variables
 * against their types, but undeclared ones are kept as sent, and everything that walks them
 * recursively (the response cache's key, canonical JSON, logging) can be made to overflow the
 * stack: variables nested 10,000 deep (20 KB, well inside the body limit) answered 500 and logged
 * an error with its stack per request (attack review #13). No input type of the schema nests
 * beyond a few levels, so anything deeper than `maxVariablesDepth` is refused before execution,
 * with code VARIABLES_TOO_DEEP (HTTP 400), and counted.
 */
import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';

/** Objects and arrays inside one another, counting the variables object itself as 1. */
export const DEFAULT_MAX_VARIABLES_DEPTH = 32;

/** Whether `value` nests objects and arrays deeper than `max` (iterative: no stack to overflow). */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

/** The yoga plugin: refuses over-deep variables with a typed 400 (onRefused counts it). */
export function useVariablesLimit(max: number, onRefused: () => void): Plugin {
  return {
    onParams({ params }) {
      if (!nestsDeeperThan(params.variables ?? {}, max)) return;
      onRefused();
      throw new GraphQLError(`Variables nest deeper than ${max} levels`, {
        extensions: { code: 'VARIABLES_TOO_DEEP', http: { status: 400 } },
      });
    },
  };
}

/** mulberry32, seeded, so randomised tests and fuzz runs repeat exactly (one implementation: node/fl/random.ts). */
export { seededUniform as seededRandom } from '../fl/random.ts';

/**
 * The search bench's index: `n` knowledge entries of German-like text (a Zipf-distributed
 * vocabulary of real words with umlauts and ß plus generated ones), 100 entries a block, written
 * with the collector's searchText and metadata so both providers index them as in production.
 */
import type { IndexDb } from '../jobs/index-db/open.ts';
import { searchText } from '../jobs/index-db/search-text.ts';

const SEED_WORDS = (
  'die der das und mühle bach straße köln wasser brot mehl korn rad müller dorf stadt ärzte übung ' +
  'größe schön grün käse bäcker brücke fluss wald feld acker pflug ernte winter sommer frühling ' +
  'herbst regen schnee sonne wind sturm haus hof scheune stall kuh pferd schaf ziege huhn ei milch ' +
  'butter honig biene garten apfel birne kirsche pflaume weizen roggen gerste hafer mais kartoffel'
).split(' ');
const SYLLABLES = ['ka', 'lo', 'mü', 'ber', 'stä', 'ru', 'ne', 'gä', 'tor', 'lin', 'ß', 'ho', 'fe', 'dö'];

/** A deterministic PRNG (mulberry32): the same index on every run and both providers. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const VOCABULARY: readonly string[] = (() => {
  const r = rng(7);
  const words = [...SEED_WORDS];
  while (words.length < 5000) {
    const n = 2 + Math.floor(r() * 3);
    words.push(Array.from({ length: n }, () => SYLLABLES[Math.floor(r() * SYLLABLES.length)]).join(''));
  }
  return [...new Set(words)];
})();

/** Word rank by a Zipf law (s = 1): a few words are everywhere, most are rare. */
function zipfPicker(r: () => number, n: number) {
  const cdf: number[] = [];
  let sum = 0;
  for (let i = 1; i <= n; i++) {
    sum += 1 / i;
    cdf.push(sum);
  }
  return () => {
    const x = r() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

const hex = (s: string, i: number) => `${s}${i.toString(16).padStart(64 - s.length, '0')}`;

/** Queries a user would type: topic words of middling frequency, some with umlauts, two-word ones, a prefix. */
export const SEARCH_QUERIES: readonly string[] = [
  'Mühle',
  'muhle bach',
  'Straße',
  'köln',
  'Bäcker',
  'brucke',
  'ernte',
  'Kartoffel',
  'honig',
  'pflaume',
  'scheune',
  'Größe',
  'übung',
  'roggen hafer',
  'kirsch',
  'sturm regen',
  'ziege',
  'apfel',
  'gerste',
  'milch butter',
];

export async function seedSearchIndex(db: IndexDb, n: number): Promise<void> {
  const r = rng(42);
  const pick = zipfPicker(r, VOCABULARY.length);
  const perBlock = 100;
  const t0 = Date.UTC(2026, 0, 1);
  const topics = ['mühle', 'landwirtschaft', 'wetter', 'verkehr', 'essen', 'handwerk'];
  for (let b = 0; b * perBlock < n; b++) {
    const at = new Date(t0 + b * 10_000);
    const entries = [];
    const metadata = [];
    for (let p = 0; p < perBlock && b * perBlock + p < n; p++) {
      const i = b * perBlock + p;
      const words = Array.from({ length: 12 + Math.floor(r() * 20) }, () => VOCABULARY[pick()]!);
      words[0] = words[0]!.charAt(0).toUpperCase() + words[0]!.slice(1);
      const content = `${words.join(' ')}.`;
      const topic = topics[i % topics.length]!;
      entries.push({
        id: hex('e', i),
        blockHash: hex('b', b),
        position: p,
        kind: 'knowledge',
        author: hex('a', i % 7),
        timestamp: new Date(at.getTime() - 1000 + p),
        payload: JSON.stringify({ kind: 'knowledge', content, metadata: [['topic', topic]] }),
        signature: hex('s', i),
        searchText: searchText(content),
      });
      metadata.push({ blockHash: hex('b', b), entryId: hex('e', i), key: 'topic', value: topic });
    }
    await db.block.create({
      data: {
        hash: hex('b', b),
        height: b,
        prevHash: b === 0 ? '0'.repeat(64) : hex('b', b - 1),
        merkleRoot: hex('m', b),
        timestamp: at,
        target: '1',
        nonce: String(b),
        miner: hex('a', 0),
        signature: hex('s', b),
        header: hex('h', b),
        entryCount: entries.length,
        sizeBytes: 100 * entries.length,
        totalWork: String(b + 1),
        reportedBy: 'bench',
        receivedAt: at,
      },
    });
    await db.entry.createMany({ data: entries });
    await db.entryMetadata.createMany({ data: metadata });
  }
}

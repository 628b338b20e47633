/**
 * The one normalisation both full-text providers see. SQLite's FTS5 and PostgreSQL's tsvector
 * tokenise and fold differently (unicode61 splits "e-mail" in two, PostgreSQL's parser keeps
 * "e-mail" as well; neither folds "ß"; PostgreSQL in the C locale does not lower-case "Ü"), so the
 * index DB never hands them raw text: entries are stored, and queries asked, as lower-case words
 * of letters and digits with diacritics folded, one space apart. Then FTS5 and `simple` split
 * the same words, and "Mühle", "MÜHLE" and "muhle" are one word on both.
 */

/** Longest word kept (PostgreSQL drops lexemes past 2 KiB; nobody searches for such words). */
export const MAX_WORD_CHARS = 64;
/** Most words a query may have: each one is a term of the SQL rank expression. */
export const MAX_QUERY_WORDS = 8;

/** Letters NFKD leaves alone but a user types plainly. */
const FOLD: Readonly<Record<string, string>> = {
  ß: 'ss',
  ẞ: 'ss',
  æ: 'ae',
  œ: 'oe',
  ø: 'o',
  ł: 'l',
  đ: 'd',
  ð: 'd',
  þ: 'th',
  ı: 'i',
};
const FOLDABLE = new RegExp(`[${Object.keys(FOLD).join('')}]`, 'gu');

/** The words of a text as the index stores them. */
export function searchWords(text: string): string[] {
  const folded = text
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .replace(FOLDABLE, (c) => FOLD[c] ?? c);
  const words = folded.match(/[\p{L}\p{N}]+/gu) ?? [];
  return words.map((w) => (w.length > MAX_WORD_CHARS ? [...w].slice(0, MAX_WORD_CHARS).join('') : w));
}

/** Entry.searchText of a text: its words, one space apart. */
export const searchText = (text: string): string => searchWords(text).join(' ');

/** Entry.searchText of a stored payload (JSON): the knowledge content's words, '' for other kinds. */
export function payloadSearchText(payload: string): string {
  try {
    const p = JSON.parse(payload) as { kind?: unknown; content?: unknown };
    return p.kind === 'knowledge' && typeof p.content === 'string' ? searchText(p.content) : '';
  } catch {
    return '';
  }
}

/** The metadata pairs of a stored payload (JSON), for EntryMetadata; [] for other kinds. */
export function payloadMetadata(payload: string): [key: string, value: string][] {
  try {
    const p = JSON.parse(payload) as { kind?: unknown; metadata?: unknown };
    if (p.kind !== 'knowledge' || !Array.isArray(p.metadata)) return [];
    return p.metadata.filter(
      (kv): kv is [string, string] =>
        Array.isArray(kv) && typeof kv[0] === 'string' && typeof kv[1] === 'string',
    );
  } catch {
    return [];
  }
}

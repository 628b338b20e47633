/**
 * The machinery behind node/options.ts: typed option specs, the `node:util` parseArgs table and
 * the `--help` text derived from them, and reading raw flag values into typed, validated values.
 * It knows nothing about Cairn; node/options.ts holds the options and their defaults.
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';

/** A bad command line: unknown flag, missing value, or a value that fails validation. */
export class OptionError extends Error {
  readonly code = 'bad-option' as const;
  constructor(message: string) {
    super(message);
    this.name = 'OptionError';
  }
}

type Raw = string | boolean | string[] | undefined;

export interface OptionSpec<T, G extends string = string> {
  /** The long flag without dashes, e.g. `reconcile-ms`. */
  readonly flag: string;
  /** The module the option configures; `--help` lists options by group. */
  readonly group: G;
  /** Placeholder of the value in `--help` (absent for switches). */
  readonly arg?: string;
  readonly description: string;
  readonly type: 'string' | 'boolean';
  /** Repeatable (`--listen A --listen B`). */
  readonly multiple: boolean;
  /** The value when the flag is absent: the one and only place the default is written. */
  readonly default: T;
  /** How `--help` shows the default when the value itself does not say it well. */
  readonly defaultText?: string;
  /** Reads parseArgs' value (undefined when the flag is absent) into T; throws OptionError. */
  readonly read: (raw: Raw) => T;
}

interface Base<G extends string> {
  readonly flag: string;
  readonly group: G;
  readonly description: string;
  readonly arg?: string;
  readonly defaultText?: string;
}

const bad = (flag: string, what: string): never => {
  throw new OptionError(`--${flag} ${what}`);
};

/** A switch; absent means false. */
export function switchOpt<G extends string>(b: Base<G>): OptionSpec<boolean, G> {
  return { ...b, type: 'boolean', multiple: false, default: false, read: (raw) => raw === true };
}

/** A string, optionally checked (the check returns an error text or undefined). */
export function stringOpt<G extends string, D extends string | undefined>(
  b: Base<G> & { readonly default: D; readonly check?: (v: string) => string | undefined },
): OptionSpec<string | D, G> {
  return {
    ...b,
    type: 'string',
    multiple: false,
    read: (raw) => {
      if (raw === undefined) return b.default;
      const v = String(raw);
      const problem = b.check?.(v);
      if (problem) bad(b.flag, problem);
      return v;
    },
  };
}

/** One of a fixed set of words. */
export function choiceOpt<G extends string, const V extends string, D extends V | undefined>(
  b: Base<G> & { readonly values: readonly V[]; readonly default: D },
): OptionSpec<V | D, G> {
  return {
    ...b,
    arg: b.arg ?? b.values.join('|'),
    type: 'string',
    multiple: false,
    read: (raw) => {
      if (raw === undefined) return b.default;
      const v = String(raw);
      if (!(b.values as readonly string[]).includes(v)) bad(b.flag, `is one of ${b.values.join(', ')}`);
      return v as V;
    },
  };
}

/** An integer within [min, max]. */
export function intOpt<G extends string, D extends number | undefined>(
  b: Base<G> & { readonly default: D; readonly min: number; readonly max?: number },
): OptionSpec<number | D, G> {
  return {
    ...b,
    arg: b.arg ?? 'N',
    type: 'string',
    multiple: false,
    read: (raw) => {
      if (raw === undefined) return b.default;
      const s = String(raw).trim();
      const n = /^-?\d+$/.test(s) ? Number(s) : Number.NaN;
      const max = b.max ?? Number.MAX_SAFE_INTEGER;
      if (!Number.isSafeInteger(n) || n < b.min || n > max)
        bad(
          b.flag,
          `needs an integer from ${b.min}${b.max !== undefined ? ` to ${b.max}` : ' up'} (got "${s}")`,
        );
      return n;
    },
  };
}

/** A number (not necessarily whole) within [min, max]. */
export function numberOpt<G extends string, D extends number | undefined = number>(
  b: Base<G> & { readonly default: D; readonly min: number; readonly max: number },
): OptionSpec<number | D, G> {
  return {
    ...b,
    arg: b.arg ?? 'X',
    type: 'string',
    multiple: false,
    read: (raw) => {
      if (raw === undefined) return b.default;
      const s = String(raw).trim();
      const n = s === '' ? Number.NaN : Number(s);
      if (!Number.isFinite(n) || n < b.min || n > b.max)
        bad(b.flag, `needs a number from ${b.min} to ${b.max} (got "${s}")`);
      return n;
    },
  };
}

/** A comma-separated list; each item is checked (the check returns an error text or undefined). */
export function listOpt<G extends string, T extends string = string>(
  b: Base<G> & { readonly default: readonly T[]; readonly check?: (item: string) => string | undefined },
): OptionSpec<readonly T[], G> {
  return {
    ...b,
    arg: b.arg ?? 'LIST',
    type: 'string',
    multiple: false,
    read: (raw) => {
      if (raw === undefined) return b.default;
      const items = String(raw)
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      for (const item of items) {
        const problem = b.check?.(item);
        if (problem) bad(b.flag, `${problem} ("${item}")`);
      }
      return items as T[];
    },
  };
}

/** A repeatable flag; each value is checked (the check returns an error text or undefined). */
export function repeatOpt<G extends string>(
  b: Base<G> & { readonly default: readonly string[]; readonly check?: (v: string) => string | undefined },
): OptionSpec<readonly string[], G> {
  return {
    ...b,
    type: 'string',
    multiple: true,
    read: (raw) => {
      if (raw === undefined) return b.default;
      const values = (Array.isArray(raw) ? raw : [String(raw)]).map(String);
      for (const v of values) {
        const problem = b.check?.(v);
        if (problem) bad(b.flag, `${problem} ("${v}")`);
      }
      return values.length ? values : b.default;
    },
  };
}

// biome-ignore lint/suspicious/noExplicitAny: a table holds specs of every value type
export type OptionTable = Readonly<Record<string, OptionSpec<any>>>;
export type ValuesOf<O extends OptionTable> = {
  -readonly [K in keyof O]: O[K]['default'] | ReturnType<O[K]['read']>;
};

/** The parseArgs table: no defaults in it, so an absent flag reads as undefined and the spec's default applies. */
export function parseArgsConfig(table: OptionTable): NonNullable<ParseArgsConfig['options']> {
  const out: NonNullable<ParseArgsConfig['options']> = {};
  for (const spec of Object.values(table)) out[spec.flag] = { type: spec.type, multiple: spec.multiple };
  return out;
}

/** Strict parse of argv, then every value read and validated; `help` is known before validation. */
export function parseOptions<O extends OptionTable>(
  table: O,
  argv: readonly string[],
): { readonly help: boolean; readonly read: () => ValuesOf<O> } {
  let values: Record<string, Raw>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: { ...parseArgsConfig(table), help: { type: 'boolean' } },
      strict: true,
      allowPositionals: false,
    }) as { values: Record<string, Raw> });
  } catch (err) {
    throw new OptionError((err as Error).message);
  }
  return {
    help: values.help === true,
    read: () => {
      const out: Record<string, unknown> = {};
      for (const [key, spec] of Object.entries(table)) out[key] = spec.read(values[spec.flag]);
      return out as ValuesOf<O>;
    },
  };
}

/** What `--help` shows as an option's default, or undefined when it has none worth saying. */
export function defaultTextOf(spec: OptionSpec<unknown>): string | undefined {
  if (spec.defaultText !== undefined) return spec.defaultText;
  const d = spec.default;
  if (d === undefined || d === false) return undefined;
  if (Array.isArray(d)) return d.length ? d.join(spec.multiple ? ' ' : ',') : undefined;
  return String(d);
}

const FLAG_COLUMN = 26;
const WIDTH = 100;

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/** `--help` text: the options of each group under its title, in table order, each with its default. */
export function renderHelp<G extends string>(
  table: OptionTable,
  groups: Readonly<Record<G, string>>,
  intro: string,
  outro: string,
): string {
  const out = [intro, ''];
  for (const [group, title] of Object.entries(groups) as [G, string][]) {
    const specs = Object.values(table).filter((s) => s.group === group);
    if (!specs.length) continue;
    out.push(`${title}:`);
    for (const s of specs) {
      const head = `  --${s.flag}${s.arg ? ` ${s.arg}` : ''}${s.multiple ? ' …' : ''}`;
      const dflt = defaultTextOf(s);
      const body = `${s.description}${dflt !== undefined ? ` (default ${dflt})` : ''}`;
      const lines = wrap(body, WIDTH - FLAG_COLUMN);
      const pad = ' '.repeat(FLAG_COLUMN);
      if (head.length < FLAG_COLUMN) out.push(head.padEnd(FLAG_COLUMN) + (lines.shift() ?? ''));
      else out.push(head);
      for (const l of lines) out.push(pad + l);
    }
    out.push('');
  }
  out.push('  --help                  this text', '', outro);
  return out.join('\n');
}

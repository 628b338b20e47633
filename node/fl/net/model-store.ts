/**
 * Model versions on disk, `<dataDir>/models/<hash>.bin`, each the canonical encoding whose
 * SHA-256 is its name. Writes go through a temporary file and a rename, so a crash never
 * leaves a file whose content does not match its name; reads re-check the hash.
 *
 * Only versions a main-chain `model` entry names reach the disk. What a coordinator pushes
 * (`fl-commit`) or announces before the chain names it is a candidate, held in memory: at most
 * `maxHeld` of them (MAX_HELD_ROUNDS, one per round a participant holds), each of the size its
 * round announced. Written to disk as they were, 20 announce+commit cycles of 2^17+1 parameters
 * put 20 MiB on every trainer's disk, and nothing ever deleted them (issue 16, Finding 5).
 *
 * Candidates are admitted by standing: the version of a round this node trained in (`trained`)
 * outranks one a round announcement merely named (`announced`), which any coordinator can make
 * this node fetch for the price of an announcement. When full, the lowest standing goes first, so
 * announcements never push out a trained round's version, and one arriving when every held
 * candidate outranks it is not held at all (`refused`). Before this, four identities' announce-only
 * commits evicted an honest round's version before its chain entry arrived (ATK-16).
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type Hex, toHex } from '../../chain/bytes.ts';
import type { Params } from '../logistic.ts';
import { decodeModel, encodeModel, modelHash } from './model-codec.ts';
import { MAX_HELD_ROUNDS } from './participant.ts';

const HEX32 = /^[0-9a-f]{64}$/;

/** Bytes that are not the model they were fetched or held as. */
export class ModelHashMismatch extends Error {
  override readonly name = 'ModelHashMismatch';
  readonly code = 'hash-mismatch';
}

/**
 * What became of a candidate: held in memory, written once named, pushed out by newer ones, or
 * not held because every candidate held outranks it.
 */
export type HeldFate = 'held' | 'stored' | 'evicted' | 'refused';

/**
 * Why a candidate is held: its round's commit after this node trained in it, or a round
 * announcement naming it (fetched from the announcer before any entry names it).
 */
export type Standing = 'trained' | 'announced';
const RANK: Record<Standing, number> = { announced: 0, trained: 1 };

export interface HoldOptions {
  /** The hash the bytes must have (ModelHashMismatch otherwise). */
  readonly expectHash?: Hex;
  /** Default `trained`: what a participant's commit hands over (it refuses untrained rounds'). */
  readonly standing?: Standing;
}

export interface ModelStoreOptions {
  /** Candidates held in memory at once (default MAX_HELD_ROUNDS). */
  readonly maxHeld?: number;
  /** Counts every candidate's fate (cairn_fl_models_held_total). */
  readonly onHeld?: (fate: HeldFate) => void;
}

interface Candidate {
  readonly bytes: Uint8Array;
  readonly params: Params;
  /** Who sent it: when full, the sender holding most of the lowest standing loses its oldest. */
  readonly owner: string;
  readonly standing: Standing;
}

export class ModelStore {
  /** Recently used decoded models: a round reads the same global model several times. */
  private readonly cache = new Map<Hex, Params>();
  /** Candidates no main-chain entry names yet, oldest first. */
  private readonly held = new Map<Hex, Candidate>();
  private readonly maxHeld: number;
  private readonly onHeld: (fate: HeldFate) => void;

  readonly dir: string;
  constructor(dir: string, o: ModelStoreOptions = {}) {
    this.dir = dir;
    this.maxHeld = Math.max(1, o.maxHeld ?? MAX_HELD_ROUNDS);
    this.onHeld = o.onHeld ?? (() => {});
  }

  private file(hash: Hex): string {
    if (!HEX32.test(hash)) throw new RangeError(`not a model hash: ${hash}`);
    return path.join(this.dir, `${hash}.bin`);
  }

  /** Stores encoded model bytes after checking they decode; returns their hash. */
  async putEncoded(bytes: Uint8Array, expectHash?: Hex): Promise<Hex> {
    return (await this.putChecked(bytes, expectHash)).hash;
  }

  /**
   * putEncoded, also returning the decoded model. Throws, storing nothing, when the bytes do not
   * hash to `expectHash` (if given) or do not decode.
   */
  async putChecked(bytes: Uint8Array, expectHash?: Hex): Promise<{ hash: Hex; params: Params }> {
    const hash = hashChecked(bytes, expectHash);
    const params = decodeModel(bytes);
    await mkdir(this.dir, { recursive: true });
    const target = this.file(hash);
    const tmp = `${target}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await writeFile(tmp, bytes);
    await rename(tmp, target);
    this.remember(hash, params);
    return { hash, params };
  }

  async put(params: Params): Promise<{ hash: Hex; bytes: Uint8Array }> {
    const bytes = encodeModel(params);
    return { hash: await this.putEncoded(bytes), bytes };
  }

  /** The stored bytes, or undefined when absent or corrupt (a corrupt file is not served). */
  async getEncoded(hash: Hex): Promise<Uint8Array | undefined> {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(this.file(hash)));
    } catch {
      return undefined;
    }
    return toHex(modelHash(bytes)) === hash ? bytes : undefined;
  }

  async get(hash: Hex): Promise<Params | undefined> {
    const hit = this.cache.get(hash);
    if (hit) return hit;
    const bytes = await this.getEncoded(hash);
    if (!bytes) return undefined;
    const params = decodeModel(bytes);
    this.remember(hash, params);
    return params;
  }

  /** Stored, or held as a candidate. */
  async has(hash: Hex): Promise<boolean> {
    return this.cache.has(hash) || this.held.has(hash) || (await this.getEncoded(hash)) !== undefined;
  }

  /**
   * Holds a candidate in memory (nothing on disk) after checking it decodes to `paramCount`
   * parameters (DecodeError otherwise) and hashes to `o.expectHash` if given; returns its hash,
   * also when it is not held (every held candidate outranks it: heldModel is then undefined).
   */
  hold(bytes: Uint8Array, paramCount: number, owner: string, o: HoldOptions = {}): Hex {
    const hash = hashChecked(bytes, o.expectHash);
    const params = decodeModel(bytes, paramCount);
    const standing = o.standing ?? 'trained';
    const before = this.held.get(hash);
    if (before) {
      // Held already: it moves to the back as the newest, and keeps its sender unless it rises
      // in standing (a re-announcement of someone's trained version does not make it the
      // announcer's).
      const rises = RANK[standing] > RANK[before.standing];
      this.held.delete(hash);
      this.held.set(hash, rises ? { bytes, params, owner, standing } : before);
      return hash;
    }
    if (this.held.size >= this.maxHeld && this.lowestRank() > RANK[standing]) {
      this.onHeld('refused');
      return hash;
    }
    this.held.set(hash, { bytes, params, owner, standing });
    this.onHeld('held');
    while (this.held.size > this.maxHeld) this.evictOne();
    return hash;
  }

  /** A held candidate's parameters (it stays a candidate). */
  heldModel(hash: Hex): Params | undefined {
    return this.held.get(hash)?.params;
  }

  /** Candidates held now. */
  get heldCount(): number {
    return this.held.size;
  }

  /** A main-chain entry names `hash`: a held candidate of that hash goes to disk. */
  async keep(hash: Hex): Promise<Params | undefined> {
    const c = this.held.get(hash);
    if (!c) return undefined;
    const { params } = await this.putChecked(c.bytes, hash);
    this.held.delete(hash);
    this.onHeld('stored');
    return params;
  }

  private lowestRank(): number {
    let low = Number.POSITIVE_INFINITY;
    for (const c of this.held.values()) low = Math.min(low, RANK[c.standing]);
    return low;
  }

  /**
   * Among the candidates of the lowest standing, the sender holding the most loses its oldest:
   * one sender cannot flush the others, and announcements cannot flush trained rounds' versions.
   */
  private evictOne(): void {
    const low = this.lowestRank();
    const count = new Map<string, number>();
    for (const c of this.held.values())
      if (RANK[c.standing] === low) count.set(c.owner, (count.get(c.owner) ?? 0) + 1);
    const most = Math.max(...count.values());
    for (const [hash, c] of this.held) {
      if (RANK[c.standing] !== low || count.get(c.owner) !== most) continue;
      this.held.delete(hash);
      this.onHeld('evicted');
      return;
    }
  }

  private remember(hash: Hex, params: Params): void {
    this.cache.delete(hash);
    this.cache.set(hash, params);
    while (this.cache.size > 4) this.cache.delete(this.cache.keys().next().value!);
  }
}

function hashChecked(bytes: Uint8Array, expectHash: Hex | undefined): Hex {
  const hash = toHex(modelHash(bytes));
  if (expectHash !== undefined && hash !== expectHash)
    throw new ModelHashMismatch(`model bytes hash to ${hash}, expected ${expectHash}`);
  return hash;
}

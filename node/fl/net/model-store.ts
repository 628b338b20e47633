/**
 * Model versions on disk, `<dataDir>/models/<hash>.bin`, each the canonical encoding whose
 * SHA-256 is its name. Writes go through a temporary file and a rename, so a crash never
 * leaves a file whose content does not match its name; reads re-check the hash.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type Hex, toHex } from '../../chain/bytes.ts';
import type { Params } from '../logistic.ts';
import { decodeModel, encodeModel, modelHash } from './model-codec.ts';

const HEX32 = /^[0-9a-f]{64}$/;

export class ModelStore {
  /** Recently used decoded models: a round reads the same global model several times. */
  private readonly cache = new Map<Hex, Params>();

  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
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
    const hash = toHex(modelHash(bytes));
    if (expectHash !== undefined && hash !== expectHash)
      throw new Error(`model bytes hash to ${hash}, expected ${expectHash}`);
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

  async has(hash: Hex): Promise<boolean> {
    return this.cache.has(hash) || (await this.getEncoded(hash)) !== undefined;
  }

  private remember(hash: Hex, params: Params): void {
    this.cache.delete(hash);
    this.cache.set(hash, params);
    while (this.cache.size > 4) this.cache.delete(this.cache.keys().next().value!);
  }
}

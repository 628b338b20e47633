import { setTimeout as sleep } from 'node:timers/promises';
import { signBlock } from '../chain/authoring.ts';
import type { Chain } from '../chain/chain.ts';
import type { SigningKey } from '../chain/signature.ts';
import type { SealedBlock } from '../chain/types.ts';
import type { Miner } from './miner.ts';
import { buildTemplate } from './template.ts';

export interface MiningLoopOptions {
  readonly chain: Chain;
  readonly miner: Miner;
  readonly key: SigningKey;
  /** Hands a mined block to the node (which validates, stores and gossips it). */
  readonly submit: (block: SealedBlock) => Promise<void>;
  /** A template older than this is rebuilt, to pick up new entries and a fresh timestamp. */
  readonly refreshMs?: number;
  readonly now?: () => number;
  /** How long to wait before looking again while this key may not mine (default 1 s). */
  readonly idleMs?: number;
  /** A submit that failed (the store could not commit the block): mining has stopped. */
  readonly onStopped?: (err: Error) => void;
}

/**
 * Keeps the miner working on the current tip: builds a template, mines it off-thread, signs
 * and submits the result, and starts over. `headChanged()` abandons the running job at once
 * so no work is spent on a stale parent.
 */
export class MiningLoop {
  private running = false;
  private loop: Promise<void> | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  mined = 0;

  private readonly opts: MiningLoopOptions;
  constructor(opts: MiningLoopOptions) {
    this.opts = opts;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    // A failed submit ends the loop and is handed to `onStopped`: the loop's promise never
    // rejects, so stop() (called by the node when its store fails) never rejects either. It
    // did: a storage failure on a mined block's commit became an unhandled rejection of
    // stop() and the node died with code 1 instead of reporting and exiting with 74.
    this.loop = this.run().catch((err: unknown) => {
      this.running = false;
      clearInterval(this.refreshTimer);
      this.opts.onStopped?.(err instanceof Error ? err : new Error(String(err)));
    });
    this.refreshTimer = setInterval(() => this.opts.miner.cancel(), this.opts.refreshMs ?? 5_000);
    this.refreshTimer.unref();
  }

  /** Call when the chain tip changed (a block from a peer, a reorg). */
  headChanged(): void {
    this.opts.miner.cancel();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.refreshTimer);
    this.opts.miner.cancel();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { chain, miner, key } = this.opts;
    const now = this.opts.now ?? Date.now;
    while (this.running) {
      // In roster mode a block from a key without `mine` at its parent is invalid everywhere:
      // wait (a certificate may arrive, or this node may be revoked) instead of wasting work.
      if (chain.roster.minerProblem(key.publicKey, chain.tip, now())) {
        await sleep(this.opts.idleMs ?? 1_000);
        continue;
      }
      const template = buildTemplate(chain, key.publicKey, now());
      const header = await miner.mine(template.header);
      if (!header || !this.running) continue;
      if (chain.tip.hashHex !== template.parentHashHex) continue;
      await this.opts.submit(signBlock(header, template.entries, key));
      this.mined++;
    }
  }
}

/**
 * The node's classifier: the newest model version on its main chain, decoded once per version
 * and kept until the head moves on. A request never waits on more than one load of a version;
 * the weights come from the model store, or from peers when this node has not fetched them yet.
 */
import { type Hex, toHex } from '../../chain/bytes.ts';
import type { ModelPayload } from '../../chain/types.ts';
import { checkText, classifyText, type Verdict } from '../classify.ts';
import type { Params } from '../logistic.ts';

export interface ClassifierDeps {
  /** The newest model version at this node's tip (undefined before the first). */
  head(): ModelPayload | undefined;
  /** The version's parameters (model-sync.ts resolve: the store, else a peer). */
  load(hash: Uint8Array): Promise<Params>;
}

export interface Classification extends Verdict {
  /** The model version's hash (its content address, as committed on the chain). */
  readonly version: Hex;
  readonly round: number;
}

/** No version is committed yet: nothing to classify with (a 409, not a failure). */
export class NoModelError extends Error {
  constructor() {
    super('no model version is committed on this chain yet');
    this.name = 'NoModelError';
  }
}

export class Classifier {
  private loaded: { version: Hex; round: number; params: Promise<Params> } | undefined;
  /** Versions decoded so far: one per version the head has had while classifying. */
  loads = 0;

  private readonly d: ClassifierDeps;
  constructor(d: ClassifierDeps) {
    this.d = d;
  }

  async classify(text: string): Promise<Classification> {
    checkText(text);
    const head = this.d.head();
    if (!head) throw new NoModelError();
    const version = toHex(head.modelHash);
    if (this.loaded?.version !== version) {
      const params = this.d.load(head.modelHash);
      this.loads++;
      this.loaded = { version, round: head.round, params };
      // A failed load is not kept: the next request tries again (a peer may serve it then).
      params.catch(() => {
        if (this.loaded?.params === params) this.loaded = undefined;
      });
    }
    const { round, params } = this.loaded;
    return { version, round, ...classifyText(await params, text) };
  }
}

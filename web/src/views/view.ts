import type { Gateway } from '../gateway.ts';

export interface ViewContext {
  readonly gw: Gateway;
  /** Path segments after the view name, e.g. ['<hash>'] for #/block/<hash>. */
  readonly params: readonly string[];
}

/** Renders into `root`; returns what to undo when the route changes (subscriptions, timers). */
export type View = (root: HTMLElement, ctx: ViewContext) => (() => void) | undefined;

/** Runs a read that fills a view's state; returns the error to show, or undefined when it worked. */
export async function attempt(read: () => Promise<void>): Promise<unknown> {
  try {
    await read();
    return undefined;
  } catch (e) {
    return e;
  }
}

/**
 * Runs `load` now and again each time the socket comes back: what a view shows after an outage
 * is re-read from the gateway, not patched from events that may have been missed meanwhile.
 */
export function loadAndReload(gw: Gateway, load: () => Promise<void>): () => void {
  let disposed = false;
  const run = () => {
    if (!disposed) void load();
  };
  run();
  const off = gw.onReconnect(run);
  return () => {
    disposed = true;
    off();
  };
}

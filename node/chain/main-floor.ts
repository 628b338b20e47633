/**
 * A per-block state (the roster, the model head) along the main chain below the chain's
 * in-memory window, kept as the heights where it changed: it changes with admin and model
 * entries, not with every block, so it costs nothing per block that leaves memory.
 */
export class MainFloor<S> {
  /** The state before any main-chain block (genesis's). */
  readonly initial: S;
  private readonly heights: number[] = [];
  private readonly states: S[] = [];
  /** The highest height covered; -1: none. */
  private top = -1;

  constructor(initial: S) {
    this.initial = initial;
  }

  /** The state after the main-chain block at `height`, if the floor covers it. */
  at(height: number): S | undefined {
    if (height > this.top) return undefined;
    let lo = 0;
    let hi = this.heights.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.heights[mid]! <= height) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found < 0 ? this.initial : this.states[found];
  }

  /** The state after the next main-chain block up (heights at or below the top are ignored). */
  push(height: number, state: S): void {
    if (height <= this.top) return;
    const last = this.states.length ? this.states[this.states.length - 1] : this.initial;
    if (state !== last) {
      this.heights.push(height);
      this.states.push(state);
    }
    this.top = height;
  }

  /** Forgets everything above `height` (the main chain there is in memory again). */
  truncate(height: number): void {
    if (height >= this.top) return;
    while (this.heights.length && this.heights[this.heights.length - 1]! > height) {
      this.heights.pop();
      this.states.pop();
    }
    this.top = height;
  }

  /** Change points held (what the floor costs). */
  get changes(): number {
    return this.heights.length;
  }
}

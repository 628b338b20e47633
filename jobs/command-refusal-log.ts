/**
 * Refusal logging that a flood cannot turn into a log flood. Anyone who can write Redis can queue
 * bad jobs as fast as Redis takes them, and the node refuses each (command-verifier.ts,
 * scheduled-gate.ts): a warn line per refusal would fill the disk and bury the line that
 * matters. Per refusal code, the first refusal is logged in full at once; later ones within the
 * interval are only counted, and one summary line per code per interval says how many (with the
 * last one's fields as an example). A refusal after a quiet interval is logged in full again.
 * The metric beside it (cairn_admin_commands_total) still counts every one.
 *
 * Codes are a closed list (the refusal codes), so the per-code state is bounded by it.
 */
import type { Logger } from '../node/log.ts';

/** At most one summary line per code this often. */
export const REFUSAL_LOG_INTERVAL_MS = 10_000;

interface CodeState {
  /** When a line for this code was last written. */
  loggedAt: number;
  /** Refusals since then that were counted, not logged. */
  suppressed: number;
  last: Record<string, unknown>;
  message: string;
  timer: NodeJS.Timeout | undefined;
}

export class RefusalLog {
  private readonly codes = new Map<string, CodeState>();

  private readonly log: Pick<Logger, 'warn'>;
  private readonly intervalMs;
  constructor(log: Pick<Logger, 'warn'>, intervalMs = REFUSAL_LOG_INTERVAL_MS) {
    this.log = log;
    this.intervalMs = intervalMs;
  }

  /** One refusal with code `code`; `message` is the line's (e.g. `admin command refused`). */
  refused(code: string, message: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    const s = this.codes.get(code);
    if (!s || (s.suppressed === 0 && now - s.loggedAt >= this.intervalMs)) {
      this.log.warn({ ...fields, code }, message);
      if (s) s.loggedAt = now;
      else this.codes.set(code, { loggedAt: now, suppressed: 0, last: fields, message, timer: undefined });
      return;
    }
    s.suppressed++;
    s.last = fields;
    s.message = message;
    if (!s.timer) {
      s.timer = setTimeout(() => this.summarize(code), Math.max(0, s.loggedAt + this.intervalMs - now));
      s.timer.unref();
    }
  }

  private summarize(code: string): void {
    const s = this.codes.get(code);
    if (!s) return;
    s.timer = undefined;
    if (s.suppressed === 0) return;
    const seconds = Math.round((Date.now() - s.loggedAt) / 1000);
    this.log.warn(
      { ...s.last, code, count: s.suppressed },
      `${s.message}: ${s.suppressed} more (${code}) in ${seconds} s`,
    );
    s.loggedAt = Date.now();
    s.suppressed = 0;
  }

  /** Writes the pending summaries now (at shutdown: a count is not lost with the process). */
  flush(): void {
    for (const [code, s] of this.codes) {
      clearTimeout(s.timer);
      this.summarize(code);
    }
  }
}

import pino, { type Logger } from 'pino';

/** Structured JSON logs on stdout; one logger per node, children per component. */
export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { ...base }, timestamp: pino.stdTimeFunctions.isoTime });
}

export type { Logger };

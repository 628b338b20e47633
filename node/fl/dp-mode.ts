/**
 * The DP modes of a federated round (wire.ts carries them). A leaf module: options.ts and the
 * round protocol both name them without importing each other.
 *
 * `record`: every participant runs DP-SGD on its own examples and charges its own ledger (each
 * email is protected). `update`: whole updates are clipped and noised, which protects a
 * participant's update as a whole, not its records; kept, and labelled as such.
 */
export const DP_MODES = ['record', 'update'] as const;
export type DpMode = (typeof DP_MODES)[number];

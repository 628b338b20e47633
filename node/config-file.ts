import { readFile } from 'node:fs/promises';
import { assertValidNetworkConfig, DEFAULT_NETWORK, type NetworkConfig } from './chain/network-config.ts';

const BIGINT_FIELDS = ['initialTarget', 'minTarget', 'maxTarget'] as const;

/** A partial network config from JSON text (bigint fields as decimal or 0x-hex strings) over the defaults. */
export function parseNetworkConfig(text: string, source = 'network config'): NetworkConfig {
  const raw = JSON.parse(text) as Record<string, unknown>;
  const out: Record<string, unknown> = { ...DEFAULT_NETWORK };
  for (const [k, v] of Object.entries(raw)) {
    if (!(k in DEFAULT_NETWORK)) throw new Error(`${source}: unknown network config field "${k}"`);
    out[k] = (BIGINT_FIELDS as readonly string[]).includes(k) ? BigInt(v as string) : v;
  }
  const config = out as unknown as NetworkConfig;
  assertValidNetworkConfig(config);
  return config;
}

/** Reads a partial network config from a JSON file (see parseNetworkConfig). */
export async function readNetworkConfig(file: string): Promise<NetworkConfig> {
  return parseNetworkConfig(await readFile(file, 'utf8'), file);
}

/** A whole network config as JSON that parseNetworkConfig reads back to the same config (bigints as decimal strings). */
export function networkConfigToJson(config: Partial<NetworkConfig>): string {
  return `${JSON.stringify(config, (_k, v) => (typeof v === 'bigint' ? v.toString(10) : v), 2)}\n`;
}

import { readFile } from 'node:fs/promises';
import { assertValidNetworkConfig, DEFAULT_NETWORK, type NetworkConfig } from './chain/network-config.ts';

const BIGINT_FIELDS = ['initialTarget', 'minTarget', 'maxTarget'] as const;

/** Reads a partial network config from JSON (bigint fields as decimal or 0x-hex strings) over the defaults. */
export async function readNetworkConfig(file: string): Promise<NetworkConfig> {
  const raw = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  const out: Record<string, unknown> = { ...DEFAULT_NETWORK };
  for (const [k, v] of Object.entries(raw)) {
    if (!(k in DEFAULT_NETWORK)) throw new Error(`${file}: unknown network config field "${k}"`);
    out[k] = (BIGINT_FIELDS as readonly string[]).includes(k) ? BigInt(v as string) : v;
  }
  const config = out as unknown as NetworkConfig;
  assertValidNetworkConfig(config);
  return config;
}

import type { GatewayOptions } from './gateway.ts';
import { parseTokensEnv, readConfigFile } from './tokens.ts';

/**
 * The gateway settings read from the environment, shared by `main.ts` and `fetch.ts`: the
 * CAIRN_GATEWAY_CONFIG file (tokens, requireViewer, adminTimeoutMs), plus CAIRN_TOKENS and
 * CAIRN_REQUIRE_VIEWER=1 (the file's requireViewer, when set, wins).
 */
export function gatewayEnvOptions(
  env: NodeJS.ProcessEnv = process.env,
): Required<Pick<GatewayOptions, 'tokens' | 'requireViewer'>> & Pick<GatewayOptions, 'adminTimeoutMs'> {
  const file = readConfigFile(env.CAIRN_GATEWAY_CONFIG);
  return {
    tokens: [...file.tokens, ...parseTokensEnv(env.CAIRN_TOKENS)],
    requireViewer: file.requireViewer ?? env.CAIRN_REQUIRE_VIEWER === '1',
    adminTimeoutMs: file.adminTimeoutMs,
  };
}

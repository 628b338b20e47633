/**
 * The project's services as child processes, for the demo and the cluster tests: the collector,
 * the gateway, and a private redis-server (so a test can stop and restart Redis without touching
 * anyone else's). `extra` sets what differs between the two users (`detached` for the demo,
 * `track` for tests, a data dir for Redis).
 */
import { nodeBinary } from './node-process.ts';
import { Service, type ServiceSpec } from './service.ts';

type Extra = Partial<ServiceSpec>;

// Node 24 runs the sources by stripping their types, as `npm run collector` / `npm run gateway` do.
const script = (entry: string) => [entry];

/** The collector (jobs/collector/main.ts); ready once it logs its "ready" line. */
export function collectorProcess(logFile: string, env: Record<string, string>, extra: Extra = {}): Service {
  return new Service({
    name: 'collector',
    command: nodeBinary(),
    args: script('jobs/collector/main.ts'),
    env,
    logFile,
    readyLine: (l) => l.includes('"msg":"ready"'),
    ...extra,
  });
}

/** The gateway (gateway/main.ts) on 127.0.0.1:`port`; ready once it listens. */
export function gatewayProcess(
  logFile: string,
  port: number,
  env: Record<string, string>,
  extra: Extra = {},
): Service {
  return new Service({
    name: 'gateway',
    command: nodeBinary(),
    args: script('gateway/main.ts'),
    env: { ...env, PORT: String(port), HOST: '127.0.0.1' },
    logFile,
    readyLine: (l) => l.includes('"event":"ready"'),
    ...extra,
  });
}

/**
 * A redis-server on 127.0.0.1:`port` that keeps nothing on disk, like the machine's own: queues
 * and pub/sub are transient; the nodes and the index DB hold the state. `dir` is its working
 * directory (default the current one).
 */
export function redisProcess(
  logFile: string,
  port: number,
  extra: Extra & { dir?: string; configFile?: string } = {},
): Service {
  const { dir, configFile, ...rest } = extra;
  return new Service({
    name: 'redis',
    command: 'redis-server',
    args: [
      // A config file first (redis-server's rule), e.g. the demo's with its password: settings
      // kept off the command line, which every local user can read.
      ...(configFile ? [configFile] : []),
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
      ...(dir ? ['--dir', dir] : []),
    ],
    logFile,
    readyLine: (l) => l.includes('Ready to accept connections'),
    readyTimeoutMs: 15_000,
    ...rest,
  });
}

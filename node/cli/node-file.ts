/**
 * `<dataDir>/node.json`: what a running node tells the commands that work on its data dir
 * (`invite`): its peer id, addresses, chain id and process id. Written at ready, removed at a
 * clean stop; a stale file (the process is gone) is recognised by its pid.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface RunningNode {
  readonly pid: number;
  readonly peerId: string;
  readonly addrs: readonly string[];
  readonly chainIdHex: string;
  readonly httpUrl: string;
}

const FILE = 'node.json';

export async function writeNodeFile(dataDir: string, info: RunningNode): Promise<void> {
  await writeFile(path.join(dataDir, FILE), `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
}

export async function removeNodeFile(dataDir: string): Promise<void> {
  await rm(path.join(dataDir, FILE), { force: true });
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** The node running on `dataDir`, or undefined if none is (no file, or its process is gone). */
export async function readRunningNode(dataDir: string): Promise<RunningNode | undefined> {
  let info: RunningNode;
  try {
    info = JSON.parse(await readFile(path.join(dataDir, FILE), 'utf8')) as RunningNode;
  } catch {
    return undefined;
  }
  return Number.isInteger(info.pid) && alive(info.pid) ? info : undefined;
}

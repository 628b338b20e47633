/**
 * A node's data dir holds its identity seed, libp2p's WebRTC certificate key, the peer store and
 * the chain: nothing another local user should read. Created 0700 and tightened to 0700 when it
 * already exists (an attack review found 0755 with the certificate key 0644), and the process
 * creates every file after that with umask 077.
 */
import { chmod, mkdir, stat } from 'node:fs/promises';

export async function prepareDataDir(dir: string): Promise<void> {
  process.umask(0o077);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { mode, uid } = await stat(dir);
  // Only a dir we own can be tightened (a shared mount owned by root stays as it is).
  if ((mode & 0o077) !== 0 && (process.getuid === undefined || uid === process.getuid()))
    await chmod(dir, 0o700);
}

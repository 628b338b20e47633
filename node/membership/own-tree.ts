/**
 * Handing a deployment's data volume to the user its containers run as. Compose's images run as
 * the unprivileged `node` user (uid 1000), but volumes written by earlier root containers (or by
 * network-init, which runs as root to fix exactly that) hold root-owned 0600 files the nodes could
 * no longer read. `ownTree` gives every entry under a dir to one uid:gid, touching only entries
 * that differ, so a re-run over a settled volume is a walk of lstat calls.
 */
import { lchownSync, lstatSync, readdirSync } from 'node:fs';
import path from 'node:path';

export interface Owner {
  readonly uid: number;
  readonly gid: number;
}

/** Parses `UID:GID` (numbers only: names mean nothing across images). */
export function parseOwner(text: string): Owner {
  const m = /^(\d{1,10}):(\d{1,10})$/.exec(text.trim());
  if (!m) throw new Error(`--owner wants UID:GID in numbers, got ${JSON.stringify(text)}`);
  return { uid: Number(m[1]), gid: Number(m[2]) };
}

/** Gives `root` and everything under it to `owner` (symlinks themselves, never their targets). */
export function ownTree(root: string, owner: Owner): number {
  let changed = 0;
  const visit = (p: string) => {
    const st = lstatSync(p);
    if (st.uid !== owner.uid || st.gid !== owner.gid) {
      lchownSync(p, owner.uid, owner.gid);
      changed++;
    }
    if (st.isDirectory()) for (const name of readdirSync(p)) visit(path.join(p, name));
  };
  visit(root);
  return changed;
}

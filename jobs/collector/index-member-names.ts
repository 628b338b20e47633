/**
 * Member names in the index (table MemberName), so the gateway resolves an `entries` author
 * given by name without asking a node. Rows come from the same roster the collector judges
 * blocks by (index-roster.ts): the genesis config's members, and every member record a block's
 * `member.add` changes put in the roster. A name is never removed (not by a revocation, not by
 * a re-issued certificate under another name): the key's entries were written under it.
 */
import type { Hex } from '../../node/chain/bytes.ts';
import type { NetworkConfig } from '../../node/chain/network-config.ts';
import type { RosterState } from '../../node/membership/roster-state.ts';
import type { IndexDb } from '../index-db/open.ts';

type Writer = Pick<IndexDb, 'memberName'>;

export interface MemberNameRow {
  readonly name: string;
  readonly key: Hex;
}

/** The genesis config's member names (keys lower-cased, as the roster and Entry.author hold them). */
export const genesisMemberNames = (config: NetworkConfig): MemberNameRow[] =>
  config.members.map((m) => ({ name: m.name, key: m.publicKey.toLowerCase() }));

/**
 * The names a block's entries gave: member records of `after` that `parent` does not hold as
 * the same object. applyEntries keeps untouched records and makes a new one per applied
 * certificate, so this is exactly the certificates the roster accepted (not those it skipped:
 * revoked earlier in the block, or naming an admin).
 */
export function addedMemberNames(parent: RosterState, after: RosterState): MemberNameRow[] {
  if (after === parent) return [];
  const out: MemberNameRow[] = [];
  for (const [key, rec] of after.members)
    if (parent.members.get(key) !== rec) out.push({ name: rec.name, key });
  return out;
}

/** Records names as carried by `blockHash` ('' for the genesis config); idempotent. */
export async function recordMemberNames(
  tx: Writer,
  rows: readonly MemberNameRow[],
  blockHash: Hex | '',
): Promise<void> {
  for (const r of rows) {
    const id = { name: r.name, key: r.key, blockHash };
    await tx.memberName.upsert({ where: { name_key_blockHash: id }, create: id, update: {} });
  }
}

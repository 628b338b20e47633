/**
 * `npm run node -- invite --name "Kim's tablet" --role observer --capabilities train --expires 30d`
 *
 * Run on an admin's machine next to its running node (same --data-dir): records a single-use
 * invitation in the data dir's book and prints the invitation string and its QR code. The
 * running node redeems it when the new device runs `join`.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { renderUnicodeCompact } from 'uqr';
import { parseDuration } from '../membership/invitation.ts';
import { assertValidTerms, InvitationBook, type InvitationTerms } from '../membership/invitation-book.ts';
import { issueInvitation } from '../membership/issue-invitation.ts';
import { CAPABILITIES, type Capability, ROLES, type Role } from '../membership/view.ts';
import { NODE_DEFAULTS } from '../options.ts';
import { readRunningNode } from './node-file.ts';

export const INVITE_HELP = `cairn node invite — invite a device into this node's network

usage: npm run node -- invite --name NAME [options]

  --data-dir DIR        the admin node's data dir; its node must be running (default ${NODE_DEFAULTS.dataDir})
  --name NAME           the device's name in the roster (required)
  --role ROLE           ${ROLES.join(' | ')} (default submind)
  --capabilities LIST   comma-separated: ${CAPABILITIES.join(', ')} (default none)
  --expires DURATION    how long the membership lasts, e.g. 30d, 12h, 2w (default 365d)
  --valid-for DURATION  how long the invitation can be redeemed (default 7d, at most --expires)
  --addr MULTIADDR      an address of this node to put in the invitation (repeatable;
                        default: the running node's addresses)
  --no-qr               print only the invitation string
  --help                this text

Prints the invitation string on its first line, then its QR code.`;

const DEFAULT_EXPIRES = '365d';
const DEFAULT_VALID_FOR = '7d';

export async function runInvite(argv: readonly string[], out = process.stdout): Promise<number> {
  const fail = (message: string) => {
    process.stderr.write(`cairn node invite: ${message}\n`);
    return 2;
  };
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        'data-dir': { type: 'string', default: NODE_DEFAULTS.dataDir },
        name: { type: 'string' },
        role: { type: 'string', default: 'submind' },
        capabilities: { type: 'string', default: '' },
        expires: { type: 'string', default: DEFAULT_EXPIRES },
        'valid-for': { type: 'string', default: DEFAULT_VALID_FOR },
        addr: { type: 'string', multiple: true, default: [] },
        'no-qr': { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    return fail((err as Error).message);
  }
  if (values.help) {
    out.write(`${INVITE_HELP}\n`);
    return 0;
  }
  const name = values.name as string | undefined;
  if (!name) return fail('--name is required');
  const expiresMs = parseDuration(values.expires as string);
  if (expiresMs === undefined) return fail(`--expires "${values.expires}" is not a duration like 30d`);
  const validMs = parseDuration(values['valid-for'] as string);
  if (validMs === undefined) return fail(`--valid-for "${values['valid-for']}" is not a duration like 7d`);
  const capabilities = (values.capabilities as string)
    .split(',')
    .map((c) => c.trim())
    .filter(Boolean);
  const now = Date.now();
  const terms: InvitationTerms = {
    name,
    role: values.role as Role,
    capabilities: capabilities as Capability[],
    memberUntilMs: now + expiresMs,
  };
  try {
    assertValidTerms(terms);
  } catch (err) {
    return fail((err as Error).message);
  }
  const dataDir = path.resolve(values['data-dir'] as string);
  const running = await readRunningNode(dataDir);
  if (!running) {
    process.stderr.write(
      `cairn node invite: no node is running on ${dataDir}; start it first (npm run node -- --data-dir ${dataDir}): the running node redeems the invitation\n`,
    );
    return 1;
  }
  const given = values.addr as string[];
  let issued: Awaited<ReturnType<typeof issueInvitation>>;
  try {
    issued = await issueInvitation(
      new InvitationBook(dataDir),
      { chainIdHex: running.chainIdHex, peerId: running.peerId, addrs: given.length ? given : running.addrs },
      terms,
      validMs,
      now,
    );
  } catch (err) {
    return fail((err as Error).message);
  }
  const { text, expiresAtMs } = issued;
  out.write(`${text}\n`);
  if (!values['no-qr']) out.write(`${renderUnicodeCompact(text)}\n`);
  out.write(
    `Invitation for "${name}" (${terms.role}${capabilities.length ? `: ${capabilities.join(', ')}` : ''}), ` +
      `single use, redeemable until ${new Date(expiresAtMs).toISOString()}; membership until ${new Date(terms.memberUntilMs).toISOString()}.\n` +
      `On the new device: npm run node -- join '${text}' --data-dir <dir>\n`,
  );
  return 0;
}

/**
 * Invitations: the string's canonical encoding and bounds, the inviter's single-use book, and
 * redeeming over the join protocol between real libp2p hosts on loopback.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import type { PeerId } from '@libp2p/interface';
import fc from 'fast-check';
import { toHex } from '../chain/bytes.ts';
import { DecodeError } from '../chain/codec/errors.ts';
import { createLogger } from '../log.ts';
import { ReqResp } from '../p2p/reqresp.ts';
import { startLoopbackHost } from '../testing/loopback-host.ts';
import {
  decodeInvitation,
  encodeInvitation,
  INVITATION_PREFIX,
  type Invitation,
  parseDuration,
  SECRET_BYTES,
} from './invitation.ts';
import { InvitationBook, InvitationError, type InvitationTerms } from './invitation-book.ts';
import { JOIN, requestJoin, serveJoin } from './join-protocol.ts';

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
const tempDir = async () => {
  const d = await mkdtemp(path.join(os.tmpdir(), 'cairn-invite-'));
  dirs.push(d);
  return d;
};

const invitation = (over: Partial<Invitation> = {}): Invitation => ({
  chainIdHex: 'ab'.repeat(32),
  addrs: ['/ip4/192.168.1.20/tcp/4001/p2p/12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq'],
  secret: new Uint8Array(SECRET_BYTES).fill(7),
  expiresAtMs: Date.UTC(2027, 0, 1),
  ...over,
});

test('an invitation round-trips, is short enough for a QR code, and has one encoding', () => {
  const s = encodeInvitation(invitation());
  assert.ok(s.startsWith(INVITATION_PREFIX));
  assert.ok(s.length < 300, `${s.length} characters`);
  assert.deepEqual(decodeInvitation(s), invitation());
  assert.deepEqual(decodeInvitation(`  ${s}\n`), invitation(), 'pasted with whitespace');
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: SECRET_BYTES, maxLength: SECRET_BYTES }),
      fc.array(fc.string({ minLength: 1, maxLength: 60 }), { minLength: 1, maxLength: 8 }),
      fc.nat({ max: 2 ** 48 }),
      (chainId, secret, addrs, expiresAtMs) => {
        const inv = { chainIdHex: toHex(chainId), secret, addrs, expiresAtMs };
        const text = encodeInvitation(inv);
        const back = decodeInvitation(text);
        assert.deepEqual(back, inv);
        assert.equal(encodeInvitation(back), text, 'canonical');
      },
    ),
  );
});

test('a damaged or foreign string is refused with a decode error code', () => {
  const s = encodeInvitation(invitation());
  const code = (text: string) => {
    try {
      decodeInvitation(text);
      return 'accepted';
    } catch (err) {
      assert.ok(err instanceof DecodeError, String(err));
      return err.code;
    }
  };
  assert.equal(code('https://example.com'), 'invalid-value');
  assert.equal(code(s.slice(0, -6)), 'truncated');
  assert.equal(code(`${s}AAAA`), 'trailing-bytes');
  assert.equal(code(`${INVITATION_PREFIX}AgAA`), 'unsupported-version');
  assert.equal(code(`${INVITATION_PREFIX}${'A'.repeat(3000)}`), 'oversized');
  assert.equal(
    code(`${s.slice(0, INVITATION_PREFIX.length)}!${s.slice(INVITATION_PREFIX.length + 1)}`),
    'invalid-value',
  );
  assert.throws(() => encodeInvitation(invitation({ addrs: [] })), RangeError);
  assert.throws(
    () => encodeInvitation(invitation({ addrs: Array(9).fill('/ip4/1.2.3.4/tcp/1') })),
    RangeError,
  );
});

test('durations: 30d, 12h, 90m, 45s, 2w; anything else is undefined', () => {
  assert.equal(parseDuration('30d'), 30 * 86_400_000);
  assert.equal(parseDuration('12h'), 12 * 3_600_000);
  assert.equal(parseDuration('90m'), 90 * 60_000);
  assert.equal(parseDuration('45s'), 45_000);
  assert.equal(parseDuration('2w'), 14 * 86_400_000);
  for (const bad of ['', '0d', '-1d', '1.5d', '30', 'd', '30 days', '1y'])
    assert.equal(parseDuration(bad), undefined, bad);
});

const terms: InvitationTerms = {
  name: "Kim's tablet",
  role: 'observer',
  capabilities: ['train'],
  memberUntilMs: Date.UTC(2027, 0, 1),
};

test('the book: an invitation is redeemed once, within its validity; the secret is never stored', async () => {
  const dir = await tempDir();
  const book = new InvitationBook(dir);
  const now = Date.UTC(2026, 11, 1);
  const secret = await book.create(terms, now + 60_000, now);
  const files = await readdir(path.join(dir, 'invitations'));
  assert.equal(files.length, 1);
  assert.ok(!files[0]!.includes(Buffer.from(secret).toString('hex')), 'named by a hash of the secret');

  const refusal = async (p: Promise<unknown>) => {
    try {
      await p;
      return 'redeemed';
    } catch (err) {
      assert.ok(err instanceof InvitationError, String(err));
      return err.code;
    }
  };
  // Two joiners race: exactly one wins.
  const [a, b] = await Promise.all([
    refusal(book.redeem(secret, 'aa'.repeat(32), now + 1)),
    refusal(book.redeem(secret, 'bb'.repeat(32), now + 1)),
  ]);
  assert.deepEqual([a, b].sort(), ['invitation-used', 'redeemed']);
  assert.equal(await refusal(book.redeem(secret, 'cc'.repeat(32), now + 2)), 'invitation-used');
  // A fresh book over the same dir (the node restarted): still used.
  assert.equal(
    await refusal(new InvitationBook(dir).redeem(secret, 'cc'.repeat(32), now + 3)),
    'invitation-used',
  );

  const late = await book.create(terms, now + 10, now);
  assert.equal(await refusal(book.redeem(late, 'dd'.repeat(32), now + 11)), 'invitation-expired');
  assert.equal(
    await refusal(book.redeem(new Uint8Array(SECRET_BYTES), 'dd'.repeat(32), now)),
    'unknown-invitation',
  );
  await assert.rejects(book.create({ ...terms, role: 'king' as never }, now + 10, now), RangeError);
});

test('join protocol: the inviter issues to the key that dialled, once; a reused invitation is refused', async () => {
  const inviter = await startLoopbackHost(41, 'join', dirs);
  const kim = await startLoopbackHost(42, 'join', dirs);
  const eve = await startLoopbackHost(43, 'join', dirs);
  try {
    const rr = (h: typeof inviter) =>
      new ReqResp(h.host, '/cairn/join-test', { penalise: () => {} }, createLogger('silent'));
    const server = rr(inviter);
    const book = new InvitationBook(await tempDir());
    const issued: { terms: InvitationTerms; key: string }[] = [];
    const outcomes: string[] = [];
    await serveJoin(server, {
      redeem: (s, k) => book.redeem(s, k),
      issue: async (t, key) => {
        issued.push({ terms: t, key });
        return new TextEncoder().encode(`certificate for ${key}`);
      },
      networkConfigJson: '{"name":"join-test"}',
      publicKeyOf: (p: PeerId) => toHex(p.publicKey!.raw),
      count: (o) => outcomes.push(o),
    });
    const secret = await book.create(terms, Date.now() + 60_000);
    for (const j of [kim, eve]) await j.host.dial(inviter.host.getMultiaddrs());

    const answer = await requestJoin(rr(kim), inviter.identity.peerId, secret);
    assert.equal(answer.networkConfigJson, '{"name":"join-test"}');
    assert.deepEqual(
      issued,
      [{ terms, key: kim.identity.publicKeyHex }],
      'issued to the key on the connection',
    );
    assert.equal(
      new TextDecoder().decode(answer.certificate),
      `certificate for ${kim.identity.publicKeyHex}`,
    );

    await assert.rejects(
      requestJoin(rr(eve), inviter.identity.peerId, secret),
      (err: unknown) => err instanceof InvitationError && err.code === 'invitation-used',
    );
    assert.equal(issued.length, 1);
    assert.deepEqual(outcomes, ['issued', 'invitation-used']);
    assert.equal(JOIN.maxRequestBytes, SECRET_BYTES);
  } finally {
    await Promise.all([inviter, kim, eve].map((h) => h.host.stop()));
  }
});

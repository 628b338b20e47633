/**
 * The roster as a pure function of genesis and config entries: expiry, revocation order,
 * the admin-majority rule, and which entries each rule refuses with which code.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { createEntry } from '../chain/authoring.ts';
import { type Hex, toHex } from '../chain/bytes.ts';
import { chainIdOf, type NetworkConfig } from '../chain/network-config.ts';
import type { SigningKey } from '../chain/signature.ts';
import type { SealedEntry } from '../chain/types.ts';
import { testKey, testNetwork } from '../testing/forge.ts';
import { signCertificate } from './certificate.ts';
import {
  ADMIN_ADD,
  ADMIN_REMOVE,
  applyEntries,
  entryProblem,
  genesisRoster,
  holds,
  MAX_OPEN_PROPOSALS_PER_ADMIN,
  MEMBER_ADD,
  MEMBER_REVOKE,
  majorityOf,
  minerProblem,
  type RosterState,
} from './roster-state.ts';
import type { Capability, Role } from './view.ts';

const admin = testKey(800);
const hex = (k: SigningKey) => toHex(k.publicKey);
const T0 = 1_700_000_000_000;
const DAY = 86_400_000;

function rosterNetwork(overrides: Partial<NetworkConfig> = {}): NetworkConfig {
  return testNetwork({ membership: 'roster', admins: [hex(admin)], ...overrides });
}

const net = rosterNetwork({
  members: [
    { publicKey: hex(testKey(1)), name: 'miner', role: 'submind', capabilities: ['mine', 'submit'] },
    {
      publicKey: hex(testKey(2)),
      name: 'tablet',
      role: 'observer',
      capabilities: ['mine', 'submit', 'train'],
    },
    {
      publicKey: hex(testKey(3)),
      name: 'old',
      role: 'submind',
      capabilities: ['submit'],
      expiresAtMs: T0 + DAY,
    },
  ],
});
const chainId = chainIdOf(net);

function cert(
  subject: SigningKey,
  opts: {
    issuedAtMs?: number;
    expiresAtMs?: number;
    role?: Role;
    caps?: Capability[];
    issuer?: SigningKey;
  } = {},
) {
  return signCertificate(
    {
      chainId,
      subject: subject.publicKey,
      name: 'device',
      role: opts.role ?? 'submind',
      capabilities: opts.caps ?? ['submit'],
      issuedAtMs: opts.issuedAtMs ?? T0,
      expiresAtMs: opts.expiresAtMs ?? T0 + 30 * DAY,
    },
    opts.issuer ?? admin,
  );
}

const config = (by: SigningKey, changes: [string, string][], at = T0 + 1000): SealedEntry =>
  createEntry({ kind: 'config', changes: changes.sort((a, b) => (a[0] < b[0] ? -1 : 1)) }, by, at);
const add = (subject: SigningKey, at = T0 + 1000, o: Parameters<typeof cert>[1] = {}) =>
  config(admin, [[MEMBER_ADD, toHex(cert(subject, o).encoded)]], at);
const revoke = (subject: SigningKey, at: number, by = admin) =>
  config(by, [[MEMBER_REVOKE, hex(subject)]], at);
const knowledge = (by: SigningKey, at = T0 + 1000) =>
  createEntry({ kind: 'knowledge', content: 'x', metadata: [] }, by, at);
const model = (by: SigningKey) =>
  createEntry(
    {
      kind: 'model',
      modelHash: new Uint8Array(32).fill(1),
      parentHash: null,
      round: 1,
      metrics: [],
      epsilon: 0,
    },
    by,
    T0 + 1000,
  );

/** Applies entries one block each, checking each is valid first. */
function chainOf(state: RosterState, ...blocks: SealedEntry[][]): RosterState {
  for (const b of blocks) {
    for (const e of b) assert.equal(entryProblem(state, e, chainId, e.timestamp)?.code, undefined, 'valid');
    state = applyEntries(state, b);
  }
  return state;
}

test('genesis members hold what the config grants; an observer never mines or submits', () => {
  const s = genesisRoster(net);
  assert.equal(holds(s, hex(admin), 'coordinate', T0), 'ok', 'admins hold everything');
  assert.equal(holds(s, hex(testKey(1)), 'mine', T0), 'ok');
  assert.equal(holds(s, hex(testKey(1)), 'coordinate', T0), 'lacks');
  assert.equal(holds(s, hex(testKey(2)), 'mine', T0), 'lacks', 'observer: mine stripped');
  assert.equal(holds(s, hex(testKey(2)), 'train', T0), 'ok');
  assert.equal(holds(s, hex(testKey(9)), 'mine', T0), 'not-member');
  assert.equal(minerProblem(s, hex(testKey(2)), T0)?.code, 'miner-lacks-mine');
  assert.equal(minerProblem(s, hex(testKey(9)), T0)?.code, 'miner-not-member');
  assert.equal(entryProblem(s, knowledge(testKey(2)), chainId, T0)?.code, 'author-lacks-submit');
  assert.equal(entryProblem(s, knowledge(testKey(9)), chainId, T0)?.code, 'author-not-member');
  assert.equal(entryProblem(s, model(testKey(1)), chainId, T0)?.code, 'author-lacks-coordinate');
  assert.equal(entryProblem(s, model(admin), chainId, T0), undefined);
  assert.equal(entryProblem(s, add(testKey(4)), chainId, T0), undefined);
  assert.equal(
    entryProblem(s, config(testKey(1), [['checkpoint', `1:${'a'.repeat(64)}`]]), chainId, T0)?.code,
    'author-not-admin',
  );
});

test('expiry: a member holds its capabilities strictly before expires-at, never after', () => {
  fc.assert(
    fc.property(fc.integer({ min: -DAY, max: 2 * DAY }), (offset) => {
      const s = genesisRoster(net);
      const at = T0 + DAY + offset;
      assert.equal(holds(s, hex(testKey(3)), 'submit', at), at < T0 + DAY ? 'ok' : 'expired');
      const e = knowledge(testKey(3), at);
      assert.equal(entryProblem(s, e, chainId, at)?.code, at < T0 + DAY ? undefined : 'author-expired');
    }),
  );
  // An expired certificate cannot be added; a certificate's member expires like a genesis one.
  const s = genesisRoster(net);
  const late = add(testKey(5), T0 + 10 * DAY, { expiresAtMs: T0 + 5 * DAY });
  assert.equal(entryProblem(s, late, chainId, T0 + 10 * DAY)?.code, 'certificate-expired');
  const s2 = chainOf(s, [add(testKey(5), T0 + 1000, { expiresAtMs: T0 + 5 * DAY })]);
  assert.equal(holds(s2, hex(testKey(5)), 'submit', T0 + 5 * DAY - 1), 'ok');
  assert.equal(holds(s2, hex(testKey(5)), 'submit', T0 + 5 * DAY), 'expired');
});

test('revocation order: a certificate issued up to the revocation is void, a later one re-admits', () => {
  const k = testKey(6);
  let s = chainOf(genesisRoster(net), [add(k, T0 + 1000, { issuedAtMs: T0 })]);
  assert.equal(holds(s, hex(k), 'submit', T0 + 2000), 'ok');
  s = chainOf(s, [revoke(k, T0 + 5000)]);
  assert.equal(holds(s, hex(k), 'submit', T0 + 6000), 'not-member');
  // The old certificate (issued before the revocation) cannot come back, not even re-issued at the same instant.
  for (const issuedAtMs of [T0, T0 + 5000]) {
    const again = add(k, T0 + 7000, { issuedAtMs });
    assert.equal(
      entryProblem(s, again, chainId, T0 + 7000)?.code,
      'certificate-revoked',
      `issued ${issuedAtMs}`,
    );
  }
  // A certificate issued after the revocation re-admits the key.
  s = chainOf(s, [add(k, T0 + 7000, { issuedAtMs: T0 + 5001 })]);
  assert.equal(holds(s, hex(k), 'submit', T0 + 8000), 'ok');
  // Within one block, order decides: add then revoke leaves it out; revoke then (old) add too.
  const k2 = testKey(7);
  const s3 = applyEntries(genesisRoster(net), [add(k2, T0 + 1000), revoke(k2, T0 + 2000)]);
  assert.equal(holds(s3, hex(k2), 'submit', T0 + 3000), 'not-member');
  const s4 = applyEntries(genesisRoster(net), [
    revoke(k2, T0 + 2000),
    add(k2, T0 + 3000, { issuedAtMs: T0 }),
  ]);
  assert.equal(holds(s4, hex(k2), 'submit', T0 + 4000), 'not-member');
  // Admins are not revoked: they leave by an admin.remove majority.
  assert.equal(
    entryProblem(genesisRoster(net), revoke(admin, T0 + 1000), chainId, T0)?.code,
    'bad-revocation',
  );
  assert.equal(
    entryProblem(genesisRoster(net), config(admin, [[MEMBER_REVOKE, 'zz']]), chainId, T0)?.code,
    'bad-revocation',
  );
});

test('certificates: only from a current admin, for this network, signed, not for an admin', () => {
  const s = genesisRoster(net);
  const stranger = testKey(50);
  const forged = config(admin, [[MEMBER_ADD, toHex(cert(testKey(8), { issuer: stranger }).encoded)]]);
  assert.equal(entryProblem(s, forged, chainId, T0)?.code, 'bad-certificate', 'issuer not an admin');
  const other = signCertificate({ ...cert(testKey(8)), chainId: new Uint8Array(32).fill(9) }, admin);
  assert.equal(
    entryProblem(s, config(admin, [[MEMBER_ADD, toHex(other.encoded)]]), chainId, T0)?.code,
    'bad-certificate',
    'another network',
  );
  const good = cert(testKey(8)).encoded.slice();
  good[good.length - 1]! ^= 1;
  assert.equal(
    entryProblem(s, config(admin, [[MEMBER_ADD, toHex(good)]]), chainId, T0)?.code,
    'bad-certificate',
    'bad signature',
  );
  assert.equal(entryProblem(s, config(admin, [[MEMBER_ADD, 'xyz']]), chainId, T0)?.code, 'bad-certificate');
  assert.equal(entryProblem(s, add(admin), chainId, T0)?.code, 'bad-certificate', 'subject is an admin');
});

test('admin-set changes take effect exactly when a strict majority of the current admins voted', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 7 }),
      fc.array(fc.nat(), { minLength: 1, maxLength: 20 }),
      (n, voters) => {
        const admins = Array.from({ length: n }, (_, i) => testKey(100 + i));
        const candidate = testKey(99);
        let s = genesisRoster(rosterNetwork({ admins: admins.map(hex) }));
        const voted = new Set<Hex>();
        for (const v of voters) {
          if (s.admins.has(hex(candidate))) break;
          const by = admins[v % n]!;
          const vote = config(by, [[ADMIN_ADD, hex(candidate)]]);
          assert.equal(entryProblem(s, vote, chainId, T0), undefined);
          s = applyEntries(s, [vote]);
          voted.add(hex(by));
          assert.equal(s.admins.has(hex(candidate)), voted.size >= majorityOf(n), `${voted.size}/${n} voted`);
        }
        if (s.admins.has(hex(candidate))) {
          assert.equal(s.admins.size, n + 1);
          assert.equal(s.proposals.size, 0, 'a change clears every open proposal');
          assert.equal(holds(s, hex(candidate), 'mine', T0), 'ok');
        }
      },
    ),
    { numRuns: 200 },
  );
});

test('a rogue admin cannot fill the proposal table: the majority still votes it out', () => {
  const [rogue, b, c] = [testKey(210), testKey(211), testKey(212)];
  let s = genesisRoster(rosterNetwork({ admins: [hex(rogue), hex(b), hex(c)] }));
  // 64 proposals for keys it controls, in one block: only the first few open.
  const spam = Array.from({ length: 64 }, (_, i) => config(rogue, [[ADMIN_ADD, hex(testKey(300 + i))]]));
  s = applyEntries(s, spam);
  assert.equal(s.proposals.size, MAX_OPEN_PROPOSALS_PER_ADMIN, 'the per-admin bound holds within a block');
  const more = config(rogue, [[ADMIN_ADD, hex(testKey(400))]]);
  assert.equal(entryProblem(s, more, chainId, T0)?.code, 'bad-admin-change');
  // The others open and pass the removal all the same.
  const byB = config(b, [[ADMIN_REMOVE, hex(rogue)]]);
  assert.equal(entryProblem(s, byB, chainId, T0), undefined);
  s = applyEntries(s, [byB, config(c, [[ADMIN_REMOVE, hex(rogue)]])]);
  assert.deepEqual([...s.admins].sort(), [hex(b), hex(c)].sort());
  assert.equal(s.proposals.size, 0);
});

test('admin removal needs a majority, keeps one admin, and clears votes counted under the old set', () => {
  const [a, b, c] = [testKey(200), testKey(201), testKey(202)];
  let s = genesisRoster(rosterNetwork({ admins: [hex(a), hex(b), hex(c)] }));
  // a votes to add d; then b and c remove a (2 of 3): a's vote for d no longer counts.
  const d = testKey(203);
  s = applyEntries(s, [config(a, [[ADMIN_ADD, hex(d)]])]);
  assert.equal(s.proposals.size, 1);
  s = applyEntries(s, [config(b, [[ADMIN_REMOVE, hex(a)]])]);
  assert.ok(s.admins.has(hex(a)), 'one vote of three is not a majority');
  s = applyEntries(s, [config(c, [[ADMIN_REMOVE, hex(a)]])]);
  assert.deepEqual([...s.admins].sort(), [hex(b), hex(c)].sort());
  assert.equal(s.proposals.size, 0);
  // a is no admin now: its config entries are refused.
  assert.equal(entryProblem(s, config(a, [[ADMIN_ADD, hex(d)]]), chainId, T0)?.code, 'author-not-admin');
  // Two admins: a majority is both.
  s = applyEntries(s, [config(b, [[ADMIN_ADD, hex(d)]])]);
  assert.ok(!s.admins.has(hex(d)));
  s = applyEntries(s, [config(c, [[ADMIN_ADD, hex(d)]])]);
  assert.ok(s.admins.has(hex(d)));
  // The last admin cannot be removed; adding an admin twice or removing a non-admin is refused.
  const solo = genesisRoster(net);
  assert.equal(
    entryProblem(solo, config(admin, [[ADMIN_REMOVE, hex(admin)]]), chainId, T0)?.code,
    'bad-admin-change',
  );
  assert.equal(
    entryProblem(solo, config(admin, [[ADMIN_ADD, hex(admin)]]), chainId, T0)?.code,
    'bad-admin-change',
  );
  assert.equal(
    entryProblem(solo, config(admin, [[ADMIN_REMOVE, hex(d)]]), chainId, T0)?.code,
    'bad-admin-change',
  );
});

test('entries without membership changes leave the roster object as it was (shared per block)', () => {
  const s = genesisRoster(net);
  assert.equal(
    applyEntries(s, [knowledge(testKey(1)), config(admin, [['checkpoint', `1:${'a'.repeat(64)}`]])]),
    s,
  );
  assert.notEqual(applyEntries(s, [add(testKey(4))]), s);
});

test('issued-at: a pre-issued certificate grants nothing before its issued-at, everything after', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 10 * DAY }),
      fc.integer({ min: -DAY, max: DAY }),
      (ahead, offset) => {
        const k = testKey(60);
        const issuedAtMs = T0 + ahead;
        // Recorded on the chain before its validity starts (an admin pre-issuing it).
        const s = chainOf(genesisRoster(net), [
          add(k, T0 + 1000, { issuedAtMs, caps: ['mine', 'submit'], expiresAtMs: issuedAtMs + 30 * DAY }),
        ]);
        const at = issuedAtMs + offset;
        const early = at < issuedAtMs;
        assert.equal(holds(s, hex(k), 'mine', at), early ? 'not-yet-valid' : 'ok');
        assert.equal(minerProblem(s, hex(k), at)?.code, early ? 'miner-not-yet-valid' : undefined);
        const e = knowledge(k, at);
        assert.equal(entryProblem(s, e, chainId, at)?.code, early ? 'author-not-yet-valid' : undefined);
      },
    ),
  );
});

/**
 * Permissions as consensus rules on a real Chain (and a real SQLite store for the reopen): each
 * rule rejects with its own code, in blocks and at mempool admission; the roster is judged at
 * every block's own parent, follows reorgs, and survives a restart.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { createEntry } from '../chain/authoring.ts';
import { toHex } from '../chain/bytes.ts';
import { Chain, type ProcessResult } from '../chain/chain.ts';
import { chainIdHex, chainIdOf, type NetworkConfig } from '../chain/network-config.ts';
import type { SigningKey } from '../chain/signature.ts';
import { buildTemplate } from '../mining/template.ts';
import { NodeStore } from '../store/node-store.ts';
import { forgeBranch, TEST_NOW, testChain, testKey, testNetwork } from '../testing/forge.ts';
import { signCertificate } from './certificate.ts';
import { Roster } from './roster.ts';
import { MEMBER_ADD, MEMBER_REVOKE } from './roster-state.ts';

const admin = testKey(600);
const miner = testKey(601);
const observer = testKey(602);
const writer = testKey(603);
const newcomer = testKey(604);
const stranger = testKey(605);
const hex = (k: SigningKey) => toHex(k.publicKey);
const at = TEST_NOW - 60_000;

const ROSTER: Partial<NetworkConfig> = {
  membership: 'roster',
  admins: [hex(admin)],
  members: [
    { publicKey: hex(miner), name: 'miner', role: 'submind', capabilities: ['mine', 'submit'] },
    { publicKey: hex(observer), name: 'observer', role: 'observer', capabilities: ['train'] },
    { publicKey: hex(writer), name: 'writer', role: 'submind', capabilities: ['submit'] },
  ],
};
const chainId = chainIdOf(testNetwork(ROSTER));

const knowledge = (by: SigningKey, content = 'fact') =>
  createEntry({ kind: 'knowledge', content, metadata: [] }, by, at);
const addMember = (k: SigningKey, caps: ('mine' | 'submit')[] = ['mine', 'submit']) =>
  createEntry(
    {
      kind: 'config',
      changes: [
        [
          MEMBER_ADD,
          toHex(
            signCertificate(
              {
                chainId,
                subject: k.publicKey,
                name: 'newcomer',
                role: 'submind',
                capabilities: caps,
                // From genesis: forged blocks are stamped near genesis, and a certificate
                // grants nothing in blocks stamped before its issued-at.
                issuedAtMs: testNetwork(ROSTER).genesisTimestamp,
                expiresAtMs: TEST_NOW + 86_400_000,
              },
              admin,
            ).encoded,
          ),
        ],
      ],
    },
    admin,
    at,
  );
const codeOf = (r: ProcessResult) => (r.status === 'invalid' ? r.error.code : r.status);

test('roster mode: blocks and entries are refused by who made them, each with its own code', async () => {
  const t = testChain(ROSTER);
  const { chain } = t;
  const tip = () => chain.tip;
  assert.equal(
    codeOf(await t.submit(forgeBranch(chain, tip(), [{ miner: observer }])[0]!)),
    'miner-lacks-mine',
  );
  assert.equal(
    codeOf(await t.submit(forgeBranch(chain, tip(), [{ miner: stranger }])[0]!)),
    'miner-not-member',
  );
  assert.equal(
    codeOf(await t.submit(forgeBranch(chain, tip(), [{ miner: writer }])[0]!)),
    'miner-lacks-mine',
  );
  for (const [by, code] of [
    [observer, 'author-lacks-submit'],
    [stranger, 'author-not-member'],
  ] as const) {
    const e = knowledge(by);
    const r = chain.addEntry(e);
    assert.equal(r.status === 'rejected' && r.reason, code, 'mempool refuses with the block code');
    const b = forgeBranch(chain, tip(), [{ miner, entries: [e] }])[0]!;
    assert.equal(codeOf(await t.submit(b)), code);
  }
  const cfg = createEntry({ kind: 'config', changes: [['checkpoint', `1:${'a'.repeat(64)}`]] }, miner, at);
  assert.equal(
    codeOf(await t.submit(forgeBranch(chain, tip(), [{ miner, entries: [cfg] }])[0]!)),
    'author-not-admin',
  );
  const ok = forgeBranch(chain, tip(), [{ miner, entries: [knowledge(writer), knowledge(miner, 'm')] }])[0]!;
  assert.equal(codeOf(await t.submit(ok)), 'connected');
  assert.equal(chain.tip.hashHex, ok.hashHex);
  // The admin mines and authors anything.
  const m = createEntry(
    {
      kind: 'model',
      modelHash: new Uint8Array(32).fill(3),
      parentHash: null,
      round: 1,
      metrics: [],
      epsilon: 0,
    },
    admin,
    at,
  );
  assert.equal(
    codeOf(await t.submit(forgeBranch(chain, tip(), [{ miner: admin, entries: [m] }])[0]!)),
    'connected',
  );
  assert.equal(
    codeOf(
      await t.submit(
        forgeBranch(chain, tip(), [{ miner, entries: [createEntry(m.payload, writer, at)] }])[0]!,
      ),
    ),
    'author-lacks-coordinate',
  );
});

test('open mode keeps the old rules: any miner, any author, config only from config.admins', async () => {
  const t = testChain({ admins: [hex(admin)] });
  const b = forgeBranch(t.chain, t.chain.tip, [{ miner: stranger, entries: [knowledge(observer)] }])[0]!;
  assert.equal(codeOf(await t.submit(b)), 'connected');
  const cfg = createEntry({ kind: 'config', changes: [[MEMBER_ADD, 'ab']] }, admin, at);
  assert.equal(t.chain.addEntry(cfg).status, 'added', 'membership keys mean nothing in open mode');
  const bad = createEntry({ kind: 'config', changes: [['x', 'y']] }, miner, at);
  const r = t.chain.addEntry(bad);
  assert.equal(r.status === 'rejected' && r.reason, 'unauthorized-config');
});

test('the roster is judged at each block’s parent, follows a reorg, and the template obeys it', async () => {
  const t = testChain(ROSTER);
  const { chain } = t;
  const roster = new Roster({ mode: 'roster', chainId, tipRoster: () => chain.tipRoster });
  const changes: string[][] = [];
  roster.onChange((c) => changes.push([...c.revoked]));
  const g = chain.tip;
  // A: A1 adds the newcomer; it may mine from A2 on, not in A1 itself.
  const add = addMember(newcomer);
  const [A1] = forgeBranch(chain, g, [{ miner, entries: [add] }]);
  const sameBlock = forgeBranch(chain, g, [{ miner: newcomer, entries: [add] }])[0]!;
  assert.equal(
    codeOf(await t.submit(sameBlock)),
    'miner-not-member',
    'an addition counts from the next block',
  );
  assert.equal(codeOf(await t.submit(A1!)), 'connected');
  roster.refresh(TEST_NOW);
  assert.ok(roster.memberAt(hex(newcomer), TEST_NOW));
  const [A2] = forgeBranch(chain, chain.tip, [{ miner: newcomer, entries: [knowledge(newcomer)] }]);
  assert.equal(codeOf(await t.submit(A2!)), 'connected');
  // B: a heavier fork from genesis without the addition: after the reorg the newcomer is out.
  const B = forgeBranch(chain, g, [{ miner }, { miner }, { miner }]);
  for (const b of B) await t.submit(b);
  assert.equal(chain.tip.hashHex, B[2]!.hashHex);
  roster.refresh(TEST_NOW);
  assert.deepEqual(changes.at(-1), [hex(newcomer)], 'listeners hear who lost admission');
  assert.equal(roster.memberAt(hex(newcomer), TEST_NOW), undefined);
  const onB = forgeBranch(chain, chain.tip, [{ miner: newcomer }])[0]!;
  assert.equal(codeOf(await t.submit(onB)), 'miner-not-member');
  // The addition came back to the mempool; a template on B carries it, and not the newcomer's entry.
  const late = knowledge(newcomer, 'late');
  assert.equal(chain.addEntry(late).status === 'rejected', true);
  const tpl = buildTemplate(chain, miner.publicKey, TEST_NOW);
  assert.ok(
    tpl.entries.some((e) => e.idHex === add.idHex),
    'the returned addition is mined again',
  );
  assert.ok(!tpl.entries.some((e) => toHex(e.author) === hex(newcomer)));
  // Still on the A side branch, the newcomer's blocks are judged against A's roster: valid there.
  const A3 = forgeBranch(chain, chain.tree.get(A2!.hashHex)!, [{ miner: newcomer }])[0]!;
  assert.notEqual(codeOf(await t.submit(A3)), 'miner-not-member');
});

test('revocation mined: the member loses admission, its entries and blocks are refused after', async () => {
  const t = testChain(ROSTER);
  const { chain } = t;
  const roster = new Roster({ mode: 'roster', chainId, tipRoster: () => chain.tipRoster });
  const lost: string[] = [];
  roster.onChange((c) => lost.push(...c.revoked));
  const rev = createEntry({ kind: 'config', changes: [[MEMBER_REVOKE, hex(writer)]] }, admin, at);
  const before = knowledge(writer, 'before');
  assert.equal(chain.addEntry(before).status, 'added');
  const [b1] = forgeBranch(chain, chain.tip, [{ miner, entries: [rev] }]);
  assert.equal(codeOf(await t.submit(b1!)), 'connected');
  roster.refresh(TEST_NOW);
  assert.deepEqual(lost, [hex(writer)]);
  assert.equal(roster.admit(hex(writer), undefined, TEST_NOW).ok, false);
  const r = chain.addEntry(knowledge(writer, 'after'));
  assert.equal(r.status === 'rejected' && r.reason, 'author-not-member');
  // Its entry admitted before the revocation left the pool (and the store) with the revocation's block.
  const dropped = [...chain.takeUpdate().mempool].filter(([, v]) => v === null).map(([id]) => id);
  assert.ok(dropped.includes(before.idHex), 'the store drops it too');
  assert.ok(!chain.mempool.all().some((e) => toHex(e.author) === hex(writer)));
  assert.ok(
    !buildTemplate(chain, miner.publicKey, TEST_NOW).entries.some((e) => toHex(e.author) === hex(writer)),
  );
});

test('a reopened store rebuilds the roster at every block from the stored config entries', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-roster-'));
  try {
    const config = testNetwork(ROSTER);
    const open = async () => {
      let store: NodeStore | undefined;
      const chain = new Chain({ config, loadBlock: (h) => store!.loadBlock(h), now: () => TEST_NOW });
      store = await NodeStore.open({
        file: path.join(dir, 'chain.db'),
        chainIdHex: chainIdHex(config),
        genesisHashHex: chain.genesis.hashHex,
      });
      chain.restore(await store.load());
      return { chain, store };
    };
    const first = await open();
    const [A1, A2] = forgeBranch(first.chain, first.chain.tip, [
      { miner, entries: [knowledge(writer), addMember(newcomer)] },
      { miner },
    ]);
    for (const b of [A1!, A2!]) assert.equal(codeOf(await first.chain.processBlock(b)), 'connected');
    await first.store.apply(first.chain.takeUpdate());
    const next = forgeBranch(first.chain, first.chain.tip, [{ miner: newcomer }])[0]!;
    const beforeA1 = forgeBranch(first.chain, first.chain.tree.genesis, [{ miner: newcomer }])[0]!;
    await first.store.close();

    const second = await open();
    assert.ok(second.chain.tipRoster.members.has(hex(newcomer)));
    assert.equal(codeOf(await second.chain.processBlock(next)), 'connected');
    assert.equal(codeOf(await second.chain.processBlock(beforeA1)), 'miner-not-member');
    await second.store.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

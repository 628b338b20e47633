import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import Database from 'libsql';
import { toHex } from '../chain/bytes.ts';
import { keyPairFromSeed } from '../chain/signature.ts';
import { NodeStore } from '../store/node-store.ts';
import { openMessage, sealMessage } from './envelope.ts';
import { MessagingError } from './errors.ts';
import { messagingKeyFromSeed } from './keys.ts';
import { Mailbox, MailboxFull } from './mailbox.ts';
import { signReceipt } from './receipt.ts';

const chainId = new Uint8Array(32).fill(7);
const party = (n: number) => {
  const seed = new Uint8Array(32).fill(n);
  return {
    id: keyPairFromSeed(seed),
    msg: messagingKeyFromSeed(seed),
    hex: toHex(keyPairFromSeed(seed).publicKey),
  };
};
const alice = party(1);
const bob = party(2);
const carol = party(3);
const seal = (seq: number, body = `secret number ${seq}`, to = bob) =>
  sealMessage({
    chainId,
    sender: alice.id,
    recipient: to.id.publicKey,
    recipientMessagingKey: to.msg.publicKey,
    sequence: seq,
    sentAtMs: 1000 + seq,
    body,
  }).envelope;

async function openStore(t: { after(fn: () => Promise<void>): void }) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-mailbox-'));
  const file = path.join(dir, 'chain.db');
  const open = () => NodeStore.open({ file, chainIdHex: toHex(chainId), genesisHashHex: '00'.repeat(32) });
  let store = await open();
  t.after(async () => {
    await store.close().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  });
  return {
    file,
    get store() {
      return store;
    },
    reopen: async () => {
      await store.close();
      store = await open();
      return store;
    },
  };
}

test('a mailbox holds ciphertext under quotas, survives a restart, and only the recipient’s receipts delete', async (t) => {
  const s = await openStore(t);
  const limits = { perRecipientCount: 3, perDepositorCount: 4 };
  let box = await Mailbox.open(s.store.writes, {
    chainId,
    maxBodyBytes: 16 * 1024,
    limits,
    pseudonymKey: new Uint8Array(32).fill(5),
  });
  const envs = [1, 2, 3].map((q) => seal(q));
  for (const e of envs) assert.equal(await box.deposit(e, alice.hex, 10_000), 'stored');
  assert.equal(await box.deposit(envs[0]!, alice.hex, 10_000), 'duplicate', 'a second copy costs nothing');
  await assert.rejects(box.deposit(seal(4), alice.hex, 10_000), (err: unknown) => {
    assert.ok(err instanceof MailboxFull);
    assert.equal(err.quota, 'recipient-count');
    assert.match(err.message, /mailbox full: recipient-count quota \(3\)/);
    return true;
  });
  // Another recipient still fits, until the depositor's own quota is spent.
  assert.equal(await box.deposit(seal(1, 'for carol', carol), alice.hex, 10_000), 'stored');
  await assert.rejects(box.deposit(seal(2, 'again carol', carol), alice.hex, 10_000), /depositor-count/);
  await assert.rejects(box.deposit(new Uint8Array(50), alice.hex, 10_000), MessagingError);

  // Restart: everything held, quotas recounted from the rows.
  box = await Mailbox.open((await s.reopen()).writes, {
    chainId,
    maxBodyBytes: 16 * 1024,
    limits,
    pseudonymKey: new Uint8Array(32).fill(5),
  });
  assert.deepEqual(box.quotas.usage().items, 4);
  const held = await box.fetch(bob.hex, 10_000);
  assert.equal(held.length, 3);
  const opened = held.map((e) =>
    openMessage(e, { chainId, self: bob.id.publicKey, messagingSecret: bob.msg.secretKey }),
  );
  assert.deepEqual(
    opened.map((m) => m.sequence),
    [1, 2, 3],
  );

  // What the mailbox's file holds: neither the text nor the sender's key.
  await s.store.close();
  const raw = new Database(s.file);
  const rows = raw.prepare('SELECT * FROM "MailboxItem"').all() as Record<string, unknown>[];
  raw.close();
  assert.equal(rows.length, 4);
  const dump = Buffer.concat(
    rows.flatMap((r) =>
      Object.values(r).map((v) => Buffer.from(v instanceof ArrayBuffer ? new Uint8Array(v) : String(v))),
    ),
  );
  assert.ok(!dump.includes(Buffer.from('secret number')), 'no plaintext in the mailbox store');
  assert.ok(!dump.includes(Buffer.from(alice.id.publicKey)), 'no sender key bytes');
  assert.ok(!dump.includes(Buffer.from(alice.hex)), 'no sender key in hex either');
  assert.ok(
    !dump.includes(Buffer.from(alice.hex.slice(0, 40))) || rows.every((r) => r.depositor === alice.hex),
  );
  box = await Mailbox.open((await s.reopen()).writes, {
    chainId,
    maxBodyBytes: 16 * 1024,
    limits,
    pseudonymKey: new Uint8Array(32).fill(5),
  });

  // Receipts: carol's signature cannot delete bob's messages; bob's can.
  const receipt = (m: (typeof opened)[number], by = bob) =>
    signReceipt(
      { chainId, contentId: m.contentId, sender: m.sender, sequence: m.sequence, receivedAtMs: 1 },
      by.id,
    ).encoded;
  assert.equal(await box.acknowledge(carol.hex, [receipt(opened[0]!, carol)]), 0);
  assert.equal(
    await box.acknowledge(carol.hex, [receipt(opened[0]!)]),
    0,
    'bob’s receipt presented by carol',
  );
  assert.equal(
    await box.acknowledge(
      bob.hex,
      opened.slice(0, 2).map((m) => receipt(m)),
    ),
    2,
  );
  assert.equal((await box.fetch(bob.hex, 10_000)).length, 1);
  assert.equal(await box.deposit(seal(4), alice.hex, 10_000), 'stored', 'room again after the receipts');

  // Time to live: gone after seven days.
  assert.equal(await box.sweep(10_000 + 7 * 24 * 3600 * 1000), 3);
  assert.equal((await box.fetch(bob.hex, 0)).length, 0);
  assert.equal(box.quotas.usage().items, 0);
});

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { x25519 as nobleX25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { bytesEqual, toHex } from '../chain/bytes.ts';
import { keyPairFromSeed } from '../chain/signature.ts';
import { envelopeBytesFor, openMessage, readEnvelope, sealMessage } from './envelope.ts';
import { MessagingError } from './errors.ts';
import { messagingKeyFromSeed, openKeyRecord, signKeyRecord } from './keys.ts';
import { openReceipt, receiptMatches, signReceipt } from './receipt.ts';

const chainId = new Uint8Array(32).fill(7);
const otherChain = new Uint8Array(32).fill(8);
const party = (n: number) => {
  const seed = new Uint8Array(32).fill(n);
  return { seed, id: keyPairFromSeed(seed), msg: messagingKeyFromSeed(seed) };
};
const alice = party(1);
const bob = party(2);
const carol = party(3);

const seal = (body: string, sequence = 1, to = bob) =>
  sealMessage({
    chainId,
    sender: alice.id,
    recipient: to.id.publicKey,
    recipientMessagingKey: to.msg.publicKey,
    sequence,
    sentAtMs: 1_700_000_000_000,
    body,
  });
const openAs = (env: Uint8Array, who = bob, chain = chainId) =>
  openMessage(env, { chainId: chain, self: who.id.publicKey, messagingSecret: who.msg.secretKey });
const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof MessagingError, `not a MessagingError: ${err}`);
    return err.code;
  }
  return 'ok';
};

test('the messaging key comes from the seed by HKDF and is neither the Ed25519 key nor its seed', () => {
  assert.deepEqual(messagingKeyFromSeed(alice.seed), alice.msg, 'stable across derivations');
  assert.ok(!bytesEqual(alice.msg.publicKey, alice.id.publicKey));
  assert.ok(!bytesEqual(alice.msg.secretKey, alice.seed));
  assert.ok(!bytesEqual(alice.msg.secretKey, alice.id.secretKey.subarray(0, 32)));
  assert.ok(!bytesEqual(alice.msg.publicKey, bob.msg.publicKey));
});

test('a key record verifies, names its identity, and is refused when altered or of another network', () => {
  const rec = signKeyRecord(chainId, alice.id, alice.msg.publicKey, 123);
  const back = openKeyRecord(rec.encoded, chainId);
  assert.ok(bytesEqual(back.messagingKey, alice.msg.publicKey));
  assert.equal(back.identityHex, toHex(alice.id.publicKey));
  assert.equal(
    code(() => openKeyRecord(rec.encoded, otherChain)),
    'misaddressed',
  );
  const bad = rec.encoded.slice();
  bad[70]! ^= 1; // inside the messaging key
  assert.equal(
    code(() => openKeyRecord(bad, chainId)),
    'bad-signature',
  );
  assert.equal(
    code(() => openKeyRecord(rec.encoded.subarray(1), chainId)),
    'malformed',
  );
});

test('round trip: the recipient opens what was sealed for it, with sender, sequence and both ids', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), fc.integer({ min: 1, max: 2 ** 40 }), (body, seq) => {
      const { envelope, contentId } = seal(body, seq);
      const m = openAs(envelope);
      assert.equal(m.body, body);
      assert.equal(m.sequence, seq);
      assert.equal(m.senderHex, toHex(alice.id.publicKey));
      assert.equal(m.recipientHex, toHex(bob.id.publicKey));
      assert.ok(bytesEqual(m.contentId, contentId));
      assert.equal(envelope.length, envelopeBytesFor(Buffer.byteLength(body)));
    }),
    { numRuns: 200 },
  );
});

test('overhead per message is at most 256 bytes, and a relay sees neither text nor sender', () => {
  for (const len of [0, 1, 100, 127, 128, 1000, 16 * 1024]) {
    const body = 'x'.repeat(len);
    const { envelope } = seal(body);
    assert.ok(envelope.length - len <= 256, `overhead ${envelope.length - len} for ${len}`);
  }
  const { envelope } = seal('the secret meeting is at noon');
  const hex = toHex(envelope);
  assert.ok(!hex.includes(toHex(alice.id.publicKey)), 'sender key not in the clear');
  assert.ok(!Buffer.from(envelope).includes(Buffer.from('secret meeting')), 'text not in the clear');
  assert.ok(bytesEqual(readEnvelope(envelope).recipient, bob.id.publicKey), 'routing info readable');
});

test('any flipped bit is rejected (tampered, malformed or misaddressed, never opened)', () => {
  const { envelope } = seal('hello bob', 5);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: envelope.length * 8 - 1 }), (bit) => {
      const bad = envelope.slice();
      bad[bit >> 3]! ^= 1 << (bit & 7);
      const c = code(() => openAs(bad));
      assert.ok(['tampered', 'malformed', 'misaddressed', 'oversized'].includes(c), `bit ${bit}: ${c}`);
    }),
    { numRuns: 500 },
  );
  // Exhaustively for the header, where routing lives.
  for (let bit = 0; bit < 90 * 8; bit++) {
    const bad = envelope.slice();
    bad[bit >> 3]! ^= 1 << (bit & 7);
    assert.notEqual(
      code(() => openAs(bad)),
      'ok',
    );
  }
});

test('the wrong recipient cannot open it, nor can the right one when re-addressed', () => {
  const { envelope } = seal('for bob only');
  assert.equal(
    code(() => openAs(envelope, carol)),
    'misaddressed',
  );
  // Carol rewrites the recipient to herself: the AEAD (and her key) refuse it.
  const readdressed = envelope.slice();
  readdressed.set(carol.id.publicKey, 2);
  assert.equal(
    code(() => openAs(readdressed, carol)),
    'tampered',
  );
});

test('a forged sender signature and a message of another network are bad-signature', () => {
  // Mallory seals with her own key but claims alice as sender: she cannot sign as alice.
  const mallory = party(9);
  const forged = sealMessage({
    chainId,
    sender: { publicKey: alice.id.publicKey, secretKey: mallory.id.secretKey },
    recipient: bob.id.publicKey,
    recipientMessagingKey: bob.msg.publicKey,
    sequence: 1,
    sentAtMs: 1,
    body: 'hi, it is alice',
  });
  assert.equal(
    code(() => openAs(forged.envelope)),
    'bad-signature',
  );
  const { envelope } = seal('elsewhere');
  assert.equal(
    code(() => openAs(envelope, bob, otherChain)),
    'bad-signature',
  );
});

test('oversized bodies are refused when sealing and envelopes over the bound when reading', () => {
  assert.equal(
    code(() => seal('x'.repeat(16 * 1024 + 1))),
    'oversized',
  );
  const { envelope } = seal('x'.repeat(2000));
  assert.equal(
    code(() =>
      openMessage(envelope, {
        chainId,
        self: bob.id.publicKey,
        messagingSecret: bob.msg.secretKey,
        maxBodyBytes: 1000,
      }),
    ),
    'oversized',
  );
  assert.equal(
    code(() => readEnvelope(new Uint8Array(randomBytes(40)))),
    'malformed',
  );
});

test('receipts: signed by the recipient, matched to their message, refused when altered', () => {
  const { envelope, contentId } = seal('ack me', 3);
  const m = openAs(envelope);
  const r = signReceipt(
    { chainId, contentId: m.contentId, sender: m.sender, sequence: m.sequence, receivedAtMs: 9 },
    bob.id,
  );
  const back = openReceipt(r.encoded, chainId);
  assert.ok(
    receiptMatches(back, { contentId, sender: alice.id.publicKey, recipient: bob.id.publicKey, sequence: 3 }),
  );
  assert.ok(
    !receiptMatches(back, {
      contentId,
      sender: alice.id.publicKey,
      recipient: bob.id.publicKey,
      sequence: 4,
    }),
  );
  assert.ok(
    !receiptMatches(back, {
      contentId,
      sender: alice.id.publicKey,
      recipient: carol.id.publicKey,
      sequence: 3,
    }),
  );
  const bad = r.encoded.slice();
  bad[40]! ^= 1;
  assert.equal(
    code(() => openReceipt(bad, chainId)),
    'bad-receipt',
  );
  assert.equal(
    code(() => openReceipt(r.encoded, otherChain)),
    'bad-receipt',
  );
});

test('the envelope is standard X25519 + HKDF-SHA256 + XChaCha20-Poly1305: @noble opens what libsodium sealed', () => {
  // Sealing moved from @noble to libsodium for speed; the bytes on the wire and in mailboxes must
  // be the same construction, so envelopes of either version open on the other.
  const ephemeralSecret = new Uint8Array(32).fill(0x42);
  const nonce = new Uint8Array(24).fill(0x24);
  const { envelope } = sealMessage({
    chainId,
    sender: alice.id,
    recipient: bob.id.publicKey,
    recipientMessagingKey: bob.msg.publicKey,
    sequence: 9,
    sentAtMs: 1_700_000_000_000,
    body: 'grüß dich',
    ephemeralSecret,
    nonce,
  });
  const h = readEnvelope(envelope, 16 * 1024);
  assert.ok(bytesEqual(h.ephemeral, nobleX25519.getPublicKey(ephemeralSecret)));
  const shared = nobleX25519.getSharedSecret(bob.msg.secretKey, h.ephemeral);
  const key = hkdf(
    nobleSha256,
    shared,
    new Uint8Array([...h.ephemeral, ...bob.msg.publicKey]),
    new TextEncoder().encode('cairn/msg/v1/key'),
    32,
  );
  const plain = xchacha20poly1305(key, nonce, envelope.subarray(0, 90)).decrypt(h.ciphertext);
  assert.equal(plain[0], 0x31, 'the inner tag');
  assert.ok(bytesEqual(plain.subarray(2, 34), alice.id.publicKey), 'the sender inside');
  assert.equal(openAs(envelope).body, 'grüß dich');
});

/** The console's block check (web/src/verify.ts), run under Node: same code the browser bundles. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, randomBytes } from '@noble/hashes/utils.js';
import { verifyBlockSignature } from '../../web/src/verify.ts';

function signedBlock() {
  const secret = ed25519.utils.randomSecretKey();
  const header = randomBytes(120);
  const hash = sha256(header);
  return {
    height: 5,
    header: bytesToHex(header),
    hash: bytesToHex(hash),
    miner: bytesToHex(ed25519.getPublicKey(secret)),
    signature: bytesToHex(ed25519.sign(hash, secret)),
  };
}

const flipLastBit = (hex: string) =>
  `${hex.slice(0, -2)}${(Number.parseInt(hex.slice(-2), 16) ^ 1).toString(16).padStart(2, '0')}`;

test('a correctly signed block is valid', () => {
  const r = verifyBlockSignature(signedBlock());
  assert.equal(r.valid, true);
  assert.equal(r.hashMatches, true);
  assert.equal(r.signatureValid, true);
});

test('a tampered signature, miner or header makes it invalid', () => {
  const b = signedBlock();
  assert.equal(verifyBlockSignature({ ...b, signature: flipLastBit(b.signature) }).valid, false);
  assert.equal(verifyBlockSignature({ ...b, miner: signedBlock().miner }).signatureValid, false);
  const headerTampered = verifyBlockSignature({ ...b, header: flipLastBit(b.header) });
  assert.equal(headerTampered.valid, false);
  assert.equal(headerTampered.hashMatches, false);
  assert.equal(verifyBlockSignature({ ...b, signature: 'zz' }).valid, false);
});

test('genesis is unsigned by design and checked by its hash only', () => {
  const header = randomBytes(100);
  const g = {
    height: 0,
    header: bytesToHex(header),
    hash: bytesToHex(sha256(header)),
    miner: '00'.repeat(32),
    signature: '00'.repeat(64),
  };
  const r = verifyBlockSignature(g);
  assert.equal(r.genesis, true);
  assert.equal(r.valid, true);
  assert.equal(verifyBlockSignature({ ...g, height: 1 }).valid, false);
  assert.equal(verifyBlockSignature({ ...g, header: flipLastBit(g.header) }).valid, false);
});

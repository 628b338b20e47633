import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DecodeError } from '../chain/codec/errors.ts';
import { backoffMs, MESSAGING_DEFAULTS, MSG_ACK } from './protocols.ts';
import { RECEIPT_BYTES } from './receipt.ts';

test('retry backoff doubles from 1 s and stops at 5 min, within ±20% jitter', () => {
  assert.equal(backoffMs(1, 0.5), 1_000);
  assert.equal(backoffMs(2, 0.5), 2_000);
  assert.equal(backoffMs(5, 0.5), 16_000);
  assert.equal(backoffMs(40, 0.5), MESSAGING_DEFAULTS.maxBackoffMs);
  assert.equal(backoffMs(1, 0), 800);
  assert.equal(backoffMs(40, 1), 1.2 * MESSAGING_DEFAULTS.maxBackoffMs);
});

test('acknowledgements carry whole receipts only', () => {
  const rs = [new Uint8Array(RECEIPT_BYTES).fill(1), new Uint8Array(RECEIPT_BYTES).fill(2)];
  assert.deepEqual(MSG_ACK.decodeRequest(MSG_ACK.encodeRequest(rs)), rs);
  assert.throws(() => MSG_ACK.decodeRequest(new Uint8Array(RECEIPT_BYTES + 1)), DecodeError);
  assert.throws(() => MSG_ACK.decodeRequest(new Uint8Array(0)), DecodeError);
});

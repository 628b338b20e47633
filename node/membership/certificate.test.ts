/**
 * Member certificates: the encoding round-trips, is canonical (one byte string per certificate,
 * any other is refused), is bounded, and the signature covers every field.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DecodeError } from '../chain/codec/errors.ts';
import { MEMBER_NAME_MAX_BYTES } from '../chain/network-config.ts';
import { testKey } from '../testing/forge.ts';
import {
  type Certificate,
  certificateSignatureValid,
  decodeCertificate,
  MAX_CERTIFICATE_BYTES,
  signCertificate,
} from './certificate.ts';
import { CAPABILITIES, ROLES } from './view.ts';

const admin = testKey(700);
const chainId = new Uint8Array(32).fill(7);

const arbCert = fc.record({
  chainId: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  subject: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  name: fc
    .string({ unit: 'grapheme', minLength: 1, maxLength: 40 })
    .filter((s) => Buffer.byteLength(s) <= MEMBER_NAME_MAX_BYTES && s.length > 0),
  role: fc.constantFrom(...ROLES),
  capabilities: fc.subarray([...CAPABILITIES]),
  issuedAtMs: fc.integer({ min: 0, max: 2 ** 52 }),
  lifetime: fc.integer({ min: 1, max: 2 ** 40 }),
});

type CertInput = {
  chainId: Uint8Array;
  subject: Uint8Array;
  name: string;
  role: (typeof ROLES)[number];
  capabilities: (typeof CAPABILITIES)[number][];
  issuedAtMs: number;
  lifetime: number;
};
const build = (c: CertInput): Certificate =>
  signCertificate(
    {
      chainId: c.chainId,
      subject: c.subject,
      name: c.name,
      role: c.role,
      capabilities: c.capabilities,
      issuedAtMs: c.issuedAtMs,
      expiresAtMs: c.issuedAtMs + c.lifetime,
    },
    admin,
  );

const decodeCode = (bytes: Uint8Array): string | undefined => {
  try {
    decodeCertificate(bytes);
    return undefined;
  } catch (err) {
    assert.ok(err instanceof DecodeError, `a DecodeError, not ${(err as Error).name}`);
    return err.code;
  }
};

test('certificates round-trip, verify, and stay within MAX_CERTIFICATE_BYTES', () => {
  fc.assert(
    fc.property(arbCert, (a) => {
      const c = build(a);
      assert.ok(c.encoded.length <= MAX_CERTIFICATE_BYTES, `${c.encoded.length} bytes`);
      const d = decodeCertificate(c.encoded);
      assert.deepEqual(d.encoded, c.encoded);
      assert.equal(d.name, a.name);
      assert.equal(d.role, a.role);
      assert.deepEqual(
        d.capabilities,
        CAPABILITIES.filter((x) => a.capabilities.includes(x)),
      );
      assert.equal(d.expiresAtMs, a.issuedAtMs + a.lifetime);
      assert.equal(d.issuerHex, Buffer.from(admin.publicKey).toString('hex'));
      assert.ok(certificateSignatureValid(d));
    }),
    { numRuns: 200 },
  );
});

test('the longest certificate is exactly MAX_CERTIFICATE_BYTES; one byte more is oversized', () => {
  const c = signCertificate(
    {
      chainId,
      subject: testKey(1).publicKey,
      name: 'x'.repeat(MEMBER_NAME_MAX_BYTES),
      role: 'submind',
      capabilities: [...CAPABILITIES],
      issuedAtMs: 1,
      expiresAtMs: 2,
    },
    admin,
  );
  assert.equal(c.encoded.length, MAX_CERTIFICATE_BYTES);
  assert.equal(decodeCode(new Uint8Array([...c.encoded, 0])), 'oversized');
  assert.throws(
    () => signCertificate({ ...c, name: 'x'.repeat(MEMBER_NAME_MAX_BYTES + 1) }, admin),
    RangeError,
  );
  assert.throws(() => signCertificate({ ...c, name: '' }, admin), RangeError);
  assert.throws(() => signCertificate({ ...c, expiresAtMs: c.issuedAtMs }, admin), RangeError);
});

test('every single-byte change is refused by the decoder or breaks the signature (canonical)', () => {
  fc.assert(
    fc.property(arbCert, fc.nat(), fc.integer({ min: 1, max: 255 }), (a, at, delta) => {
      const c = build(a);
      const bytes = c.encoded.slice();
      const i = at % bytes.length;
      bytes[i] = (bytes[i]! + delta) & 0xff;
      let d: Certificate;
      try {
        d = decodeCertificate(bytes);
      } catch (err) {
        assert.ok(err instanceof DecodeError);
        return;
      }
      // Decoded: then it must be a different certificate whose signature no longer verifies.
      assert.notDeepEqual(d.encoded, c.encoded);
      assert.equal(certificateSignatureValid(d), false, `byte ${i} changed and still verifies`);
    }),
    { numRuns: 300 },
  );
});

test('truncations, wrong tags and versions, unknown bits and bad windows have their own codes', () => {
  const c = build({
    chainId,
    subject: testKey(2).publicKey,
    name: "Kim's tablet",
    role: 'observer',
    capabilities: ['train'],
    issuedAtMs: 1000,
    lifetime: 1000,
  });
  for (let n = 0; n < c.encoded.length; n++) assert.equal(decodeCode(c.encoded.subarray(0, n)), 'truncated');
  const at = (i: number, v: number) => {
    const b = c.encoded.slice();
    b[i] = v;
    return b;
  };
  assert.equal(decodeCode(at(0, 0x11)), 'unknown-tag');
  assert.equal(decodeCode(at(1, 2)), 'unsupported-version');
  const nameLen = c.encoded[66]!;
  const roleAt = 67 + nameLen;
  assert.equal(decodeCode(at(roleAt, ROLES.length)), 'invalid-value', 'unknown role');
  // Eight capabilities fill the u8 mask: bit 7 is `command`, and no bit is unknown any more.
  assert.deepEqual(decodeCertificate(at(roleAt + 1, 0x80)).capabilities, ['command']);
  // expires-at equal to issued-at: copy issued-at over expires-at.
  const b = c.encoded.slice();
  b.set(c.encoded.subarray(roleAt + 2, roleAt + 10), roleAt + 10);
  assert.equal(decodeCode(b), 'invalid-value');
  assert.equal(decodeCode(at(66, 0)), 'invalid-value', 'empty name');
});

test('random bytes never crash the decoder: a certificate or a DecodeError, nothing else', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: MAX_CERTIFICATE_BYTES + 8 }), (bytes) => {
      decodeCode(bytes);
    }),
    { numRuns: 2000 },
  );
  // Random bodies behind a valid tag and version reach the deeper checks.
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 60, maxLength: MAX_CERTIFICATE_BYTES - 2 }), (body) => {
      decodeCode(new Uint8Array([0x10, 1, ...body]));
    }),
    { numRuns: 2000 },
  );
});

/**
 * The roster of a test cluster: a roster network (the default for every network Cairn creates)
 * whose genesis lists a pool of pre-generated identities, handed to nodes as they are added, and
 * an admin key the harness holds, so tests can sign certificates, revocations and other config
 * entries and post them to a node's `POST /entries/signed`.
 *
 * Each pool identity is written into a node's data dir as `identity.json` (the seed format of
 * node/identity/identity.ts) before the node first starts; a restarted node keeps its own.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { CommandSigner } from '../../jobs/command-signer.ts';
import { createEntry } from '../../node/chain/authoring.ts';
import { toHex } from '../../node/chain/bytes.ts';
import type { GenesisMember } from '../../node/chain/network-config.ts';
import { keyPairFromSeed, type SigningKey } from '../../node/chain/signature.ts';
import type { KeyValue, SealedEntry } from '../../node/chain/types.ts';
import { type Certificate, signCertificate } from '../../node/membership/certificate.ts';
import { FULL_MEMBER_CAPABILITIES } from '../../node/membership/create-network.ts';
import { GATEWAY_MEMBER, loadOrCreateKeyFile } from '../../node/membership/gateway-member.ts';
import { MEMBER_ADD, MEMBER_REVOKE } from '../../node/membership/roster-state.ts';
import type { Capability, Role } from '../../node/membership/view.ts';
import { SEED_KEYS } from '../../node/testing/seed-store.ts';

export interface RosterSpec {
  /** Identities in the genesis roster, handed out in order to nodes as they are added (default 32). */
  readonly size?: number;
  /** Name, role, capabilities or expiry of pool member `i` (default `node<i>`, submind, every capability). */
  readonly member?: (i: number) => Partial<Omit<GenesisMember, 'publicKey'>>;
  /**
   * Pool identities that are also genesis admins (default none: only the harness key is), e.g.
   * [0] for a first node that invites devices and signs their certificates itself.
   */
  readonly admins?: readonly number[];
}

export interface CertificateOptions {
  readonly name?: string;
  readonly role?: Role;
  readonly capabilities?: readonly Capability[];
  readonly issuedAtMs?: number;
  readonly expiresAtMs?: number;
}

export class ClusterRoster {
  /** The harness's admin key: it signs certificates and config entries; it is in the genesis `admins`. */
  readonly admin: SigningKey;
  readonly seeds: readonly Uint8Array[];
  readonly keys: readonly SigningKey[];
  readonly members: readonly GenesisMember[];
  private next = 0;
  private readonly poolAdmins: readonly number[];
  /** Filled once the network config is written (it commits to the roster). */
  chainId: Uint8Array | undefined;

  constructor(spec: RosterSpec = {}) {
    this.admin = keyPairFromSeed(randomBytes(32));
    const size = spec.size ?? 32;
    this.poolAdmins = spec.admins ?? [];
    this.seeds = Array.from({ length: size }, () => new Uint8Array(randomBytes(32)));
    this.keys = this.seeds.map((s) => keyPairFromSeed(s));
    this.members = this.keys.map((k, i) => ({
      publicKey: toHex(k.publicKey),
      name: `node${i}`,
      role: 'submind' as Role,
      capabilities: [...FULL_MEMBER_CAPABILITIES],
      ...spec.member?.(i),
    }));
  }

  /** What goes into the network config: the admin and the pool, plus the seeded chains' keys. */
  genesis(extraAdmins: readonly string[] = []): { admins: string[]; members: GenesisMember[] } {
    const seedMembers: GenesisMember[] = SEED_KEYS.map((k, i) => ({
      publicKey: toHex(k.publicKey),
      name: `seed${i}`,
      role: 'backup',
      capabilities: ['mine', 'submit'],
    }));
    const pool = this.poolAdmins.map((i) => {
      const k = this.keys[i];
      if (!k) throw new Error(`roster.admins: no pool identity ${i}`);
      return toHex(k.publicKey);
    });
    return {
      admins: [toHex(this.admin.publicKey), ...pool, ...extraAdmins],
      members: [...this.members, ...seedMembers],
    };
  }

  /**
   * Writes pool identity `index` (default the next unused one) into `dataDir` unless it already
   * holds an identity; returns the index written, or undefined if the dir had one.
   */
  assign(dataDir: string, index?: number): number | undefined {
    const file = path.join(dataDir, 'identity.json');
    if (existsSync(file)) return undefined;
    const i = index ?? this.next++;
    const seed = this.seeds[i];
    if (!seed) throw new Error(`the cluster roster has ${this.seeds.length} identities; raise roster.size`);
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(
      file,
      `${JSON.stringify({ version: 1, seed: toHex(seed), created: new Date().toISOString() })}\n`,
      { mode: 0o600 },
    );
    return i;
  }

  /** A certificate for `subject` signed by the harness admin. */
  certificate(subject: Uint8Array, opts: CertificateOptions = {}): Certificate {
    if (!this.chainId) throw new Error('the roster network is not written yet');
    const now = Date.now();
    return signCertificate(
      {
        chainId: this.chainId,
        subject,
        name: opts.name ?? 'device',
        role: opts.role ?? 'submind',
        capabilities: opts.capabilities ?? ['submit'],
        issuedAtMs: opts.issuedAtMs ?? now - 1000,
        expiresAtMs: opts.expiresAtMs ?? now + 86_400_000,
      },
      this.admin,
    );
  }

  /**
   * A gateway identity for this cluster: its key file and a certificate from the harness admin
   * admitting it as GATEWAY_MEMBER (observer with `command`), in `dir`. The env a gateway
   * process needs to sign commands the cluster's nodes obey, and the signer for an AdminClient.
   */
  gateway(
    dir: string,
    opts: CertificateOptions = {},
  ): { env: Record<string, string>; signer: CommandSigner } {
    const keyFile = path.join(dir, 'identity.json');
    const certificateFile = path.join(dir, 'certificate.hex');
    const key = loadOrCreateKeyFile(keyFile);
    const cert = this.certificate(key.publicKey, {
      name: 'gateway',
      role: GATEWAY_MEMBER.role,
      capabilities: GATEWAY_MEMBER.capabilities,
      ...opts,
    });
    writeFileSync(certificateFile, `${toHex(cert.encoded)}\n`, { mode: 0o600 });
    return {
      env: { CAIRN_GATEWAY_KEY: keyFile, CAIRN_GATEWAY_CERTIFICATE: certificateFile },
      signer: { key, certificate: cert.encoded },
    };
  }

  /** A config entry signed by the harness admin (changes sorted by key). */
  configEntry(changes: readonly KeyValue[], timestamp = Date.now()): SealedEntry {
    const sorted = [...changes].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return createEntry({ kind: 'config', changes: sorted }, this.admin, timestamp);
  }

  addition(subject: Uint8Array, opts: CertificateOptions = {}): SealedEntry {
    return this.configEntry([[MEMBER_ADD, toHex(this.certificate(subject, opts).encoded)]]);
  }

  revocation(subject: Uint8Array): SealedEntry {
    return this.configEntry([[MEMBER_REVOKE, toHex(subject)]]);
  }
}

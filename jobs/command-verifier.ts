/**
 * The node's check of an admin command taken off its queue: anyone who can reach Redis can put a
 * job there, so a job is obeyed only if it carries a command signed (command-codec.ts) by a key
 * allowed to command this node, for this node, not expired and not seen before.
 *
 * Who may command a node:
 *  - roster networks: a key admitted at the tip (a recorded member, or one presenting a valid
 *    certificate, neither expired nor revoked) that holds the `command` capability; admins hold
 *    every capability. The gateway's key is such a member: role `observer` (it takes no part in
 *    consensus: an observer never mines, submits or coordinates, whatever its certificate says)
 *    with `command`.
 *  - open networks (no roster, every key is "admitted"): only the keys in the node's
 *    `--command-keys` option. With none configured every command is refused: unsigned or
 *    self-signed is never fine.
 *
 * Replays: used nonces are remembered in memory only, so a restarted node has forgotten them.
 * Rather than persist them, the verifier refuses every command issued before it started (less
 * COMMAND_START_SKEW_MS): whatever the previous process ran was issued before that. The gateway
 * signs a command for as long as it waits (30 s), so the cost is at most one retry for an
 * operator whose command was in flight across a restart. Persisting nonces would need a store the
 * node writes before it runs each command; Redis would not do, since whoever can reach it is the
 * one replaying. The window left: an issuer whose clock runs ahead of ours by more than the time
 * the node took to restart (plus the skew) could see a command the old process ran taken again.
 *
 * Refusals throw CommandRefused (an UnrecoverableError: retrying cannot make them valid) whose
 * message starts with `command refused (<code>)`, which the job's failedReason carries back to
 * the gateway.
 */
import { UnrecoverableError } from 'bullmq';
import { z } from 'zod';
import { fromHex, type Hex } from '../node/chain/bytes.ts';
import type { Capability, MembershipView } from '../node/membership/view.ts';
import {
  commandSignatureValid,
  decodeCommand,
  MAX_COMMAND_BYTES,
  type SignedCommand,
} from './command-codec.ts';
import type { AdminCommand } from './queues.ts';

export const COMMAND_REFUSALS = [
  'unsigned',
  'malformed',
  'wrong-command',
  'wrong-target',
  'expired',
  'not-yet-valid',
  'bad-signature',
  'not-admitted',
  'not-permitted',
  'replayed',
  'issued-before-start',
  'busy',
  'wrong-job-id',
  'disabled',
] as const;
export type CommandRefusal = (typeof COMMAND_REFUSALS)[number];

/**
 * Refusals the node answers with its signature (result-envelope.ts refuseCommand) when the
 * command's signer may command it (a command key, or an admitted member) and the signature is
 * the signer's: the gateway then gets the node's verified word on why. Refusals of anything a
 * stranger can send (unsigned, malformed, another target, not admitted, a bad signature) stay
 * unsigned job failures: a node signs nothing on demand for whoever can write Redis.
 */
export const SIGNED_REFUSALS: ReadonlySet<CommandRefusal> = new Set<CommandRefusal>([
  'expired',
  'not-yet-valid',
  'issued-before-start',
  'not-permitted',
  'replayed',
  'busy',
  'disabled',
]);

export class CommandRefused extends UnrecoverableError {
  readonly code: CommandRefusal;
  readonly command?: SignedCommand;
  constructor(
    code: CommandRefusal,
    detail: string,
    /** Set when the refusal is attributable (SIGNED_REFUSALS): the command, to answer signed. */
    command?: SignedCommand,
  ) {
    super(`command refused (${code}): ${detail}`);
    this.code = code;
    this.command = command;
    this.name = 'CommandRefused';
  }

  /** The same refusal, answerable with the node's signature. */
  attributed(cmd: SignedCommand): CommandRefused {
    return new CommandRefused(this.code, this.detail, cmd);
  }

  /** The detail, without the `command refused (<code>): ` prefix. */
  get detail(): string {
    return this.message.replace(/^command refused \([a-z-]+\): /, '');
  }
}

/** The job id an admin command is queued under: the gateway waits on it, the node checks it. */
export const commandJobId = (nonceHex: string): string => `cmd.${nonceHex}`;

/** The refusal code in a failed job's reason, if the node refused the command. */
export function refusalOf(failedReason: string): CommandRefusal | undefined {
  const m = /^command refused \(([a-z-]+)\)/.exec(failedReason);
  return m && (COMMAND_REFUSALS as readonly string[]).includes(m[1]!) ? (m[1] as CommandRefusal) : undefined;
}

/** What a signed admin job carries: the command's encoding and, optionally, the signer's certificate. */
export const SignedJobData = z
  .object({
    command: z
      .string()
      .max(MAX_COMMAND_BYTES * 2)
      .regex(/^([0-9a-f]{2})+$/),
    certificate: z
      .string()
      .max(4096)
      .regex(/^([0-9a-f]{2})+$/)
      .optional(),
  })
  .strict();
export type SignedJobData = z.infer<typeof SignedJobData>;

/** The capability each command needs (admins hold them all). One for now; the table is where a split goes. */
export const COMMAND_CAPABILITY: Record<AdminCommand, Capability> = {
  'admin.syncMempool': 'command',
  'admin.syncChain': 'command',
  'admin.reportStats': 'command',
  'admin.blockPeers': 'command',
  'admin.unblockPeers': 'command',
  'admin.submitEntry': 'command',
  'admin.inviteDevice': 'command',
  'admin.revokeDevice': 'command',
  'admin.members': 'command',
  'fl.startRound': 'command',
  'admin.sendMessage': 'command',
};

/**
 * Capabilities only an admin's own signature may grant or take away through a node. `command`
 * is one capability for every command (the certificate's u8 mask has no room for a split), and
 * the gateway's key holds it: without this rule, whoever holds the gateway's key or host (its
 * port is the one a deployment publishes) could have an admin node mint miners and commanders,
 * or revoke any miner, i.e. act as a network admin. Membership changes carrying these go through
 * an admin node's own CLI (`npm run node -- invite`), or a command an admin key signs.
 */
export const ADMIN_ONLY_CAPABILITIES: readonly Capability[] = ['mine', 'command', 'coordinate'];

/** Why a non-admin may not run this membership change, if it may not. */
function adminOnlyMembershipChange(
  cmd: SignedCommand,
  memberAt: (
    publicKeyHex: Hex,
  ) => { readonly capabilities: ReadonlySet<Capability>; readonly admin: boolean } | undefined,
  certifiedCapabilities: (publicKeyHex: Hex) => ReadonlySet<Capability> | undefined,
): string | undefined {
  const args = cmd.args as Record<string, unknown> | null;
  if (cmd.command === 'admin.inviteDevice') {
    const caps = Array.isArray(args?.capabilities) ? (args.capabilities as unknown[]) : [];
    const held = ADMIN_ONLY_CAPABILITIES.filter((c) => caps.includes(c));
    if (held.length)
      return `an invitation granting ${held.join(', ')} needs an admin's signature (run \`npm run node -- invite\` on an admin node)`;
  }
  if (cmd.command === 'admin.revokeDevice') {
    const key = typeof args?.publicKey === 'string' ? args.publicKey.toLowerCase() : undefined;
    // Judged by everything that admits the key, not the chain's record alone: a device that just
    // redeemed an invitation is a miner by its certificate while its member.add waits to be
    // mined. A key this node knows nothing of may hold anything: refused in doubt.
    const target = key ? memberAt(key) : undefined;
    const certified = key ? certifiedCapabilities(key) : undefined;
    if (!target && !certified)
      return "revoking a key this node knows no record or certificate of needs an admin's signature";
    const caps = new Set([...(target?.capabilities ?? []), ...(certified ?? [])]);
    const held = ADMIN_ONLY_CAPABILITIES.filter((c) => caps.has(c));
    if (target?.admin || held.length)
      return `revoking a member holding ${target?.admin ? 'admin' : held.join(', ')} needs an admin's signature`;
  }
  return undefined;
}

/** A clock running this far ahead of the node's may still issue commands it accepts. */
export const COMMAND_CLOCK_SKEW_MS = 30_000;
/**
 * A command issued this long before the verifier started is still taken: the issuer's clock may
 * be a little behind ours. Small, since it is also the window in which a command the previous
 * process ran could be replayed (see `verify`).
 */
export const COMMAND_START_SKEW_MS = 2_000;
/** Nonces remembered at most; each lives until its command expires (≤ MAX_COMMAND_TTL_MS + skew). */
export const MAX_REMEMBERED_NONCES = 10_000;

export interface CommandVerifierOptions {
  /** This node's peer id: commands for any other target are refused. */
  readonly nodeId: string;
  readonly membership: Pick<MembershipView, 'mode' | 'admit' | 'memberAt' | 'certifiedCapabilities'>;
  /** Open networks: the public keys (hex) allowed to command this node. Ignored on roster networks. */
  readonly commandKeys?: readonly Hex[];
  /**
   * Commands this node's config does not take, each with the reason its refusal gives (e.g.
   * admin.sendMessage without --allow-operator-messages). Refused as `disabled`, signed, once the
   * signer is known to be allowed to command the node.
   */
  readonly disabledCommands?: ReadonlyMap<AdminCommand, string>;
  readonly maxNonces?: number;
  readonly now?: () => number;
}

export class CommandVerifier {
  /** Nonce (hex) → when its command expires: a replay after that is refused as expired anyway. */
  private readonly seen = new Map<Hex, number>();
  private readonly commandKeys: ReadonlySet<Hex>;
  private readonly maxNonces: number;
  private readonly now: () => number;
  /** Commands issued before this were meant for an earlier process (whose nonces we lost). */
  private readonly startedAt: number;

  private readonly o: CommandVerifierOptions;
  constructor(o: CommandVerifierOptions) {
    this.o = o;
    this.commandKeys = new Set((o.commandKeys ?? []).map((k) => k.toLowerCase()));
    this.maxNonces = o.maxNonces ?? MAX_REMEMBERED_NONCES;
    this.now = o.now ?? Date.now;
    this.startedAt = this.now();
  }

  /** Nonces held now (for tests and metrics). */
  get remembered(): number {
    return this.seen.size;
  }

  /**
   * Checks a job named `jobName` with id `jobId` and data `data`; returns the signed command (run
   * its `args`, never the job's data) or throws CommandRefused. Cheap checks come first: the
   * signature is checked only for a well-formed, current command for this node, and a nonce is
   * remembered only once everything else passed (so a stranger cannot fill the cache).
   *
   * The job id must be `cmd.<nonce>` (commandJobId), the id the gateway adds it under and waits
   * on: a Redis client that moves the signed bytes to another id would otherwise have the node
   * run the command while its caller, watching `cmd.<nonce>`, is told the node did not answer
   * (and retries: the command runs twice). Checked once the signer is known to be allowed, before
   * the nonce is remembered: a moved copy does not use up the genuine job's nonce.
   */
  verify(jobName: string, data: unknown, jobId: string | undefined): SignedCommand {
    const shape = SignedJobData.safeParse(data);
    if (!shape.success) {
      const hasCommand = typeof data === 'object' && data !== null && 'command' in data;
      throw new CommandRefused(
        hasCommand ? 'malformed' : 'unsigned',
        hasCommand
          ? 'the job data is not {command, certificate?} in hex'
          : 'the job carries no signed command',
      );
    }
    let cmd: SignedCommand;
    try {
      cmd = decodeCommand(fromHex(shape.data.command));
    } catch (err) {
      throw new CommandRefused('malformed', (err as Error).message);
    }
    if (cmd.command !== jobName)
      throw new CommandRefused(
        'wrong-command',
        `the job is ${jobName.slice(0, 64)} but ${cmd.command} was signed`,
      );
    if (cmd.target !== this.o.nodeId)
      throw new CommandRefused('wrong-target', `signed for node ${cmd.target}, this is ${this.o.nodeId}`);
    const now = this.now();
    const untimely = this.untimely(cmd, now);
    if (untimely) {
      // Attributable only to a signer that may command this node, checked cheaply first (a key
      // lookup) so that a stranger's stale junk costs no signature check.
      if (this.mayCommand(cmd, shape.data.certificate, now) && commandSignatureValid(cmd))
        throw untimely.attributed(cmd);
      throw untimely;
    }
    if (!commandSignatureValid(cmd))
      throw new CommandRefused('bad-signature', 'the signature does not verify');
    try {
      this.authorize(cmd, shape.data.certificate, now);
      const off = this.o.disabledCommands?.get(cmd.command);
      if (off !== undefined) throw new CommandRefused('disabled', off);
      // After authorisation, before the nonce is remembered: a copy moved to another job id does
      // not use up the real job's nonce, and its caller (waiting on cmd.<nonce>) is not misled.
      if (jobId !== commandJobId(cmd.nonceHex))
        throw new CommandRefused(
          'wrong-job-id',
          `job id ${String(jobId).slice(0, 80)} is not ${commandJobId(cmd.nonceHex)}: the caller waits on that one`,
        );
      this.remember(cmd, now);
    } catch (err) {
      if (err instanceof CommandRefused && SIGNED_REFUSALS.has(err.code)) throw err.attributed(cmd);
      throw err;
    }
    return cmd;
  }

  /** Why a command is not current (expired, ahead of our clock, meant for an earlier process). */
  private untimely(cmd: SignedCommand, now: number): CommandRefused | undefined {
    if (now >= cmd.expiresAtMs)
      return new CommandRefused('expired', `expired ${now - cmd.expiresAtMs} ms ago`);
    if (cmd.issuedAtMs > now + COMMAND_CLOCK_SKEW_MS)
      return new CommandRefused('not-yet-valid', `issued ${cmd.issuedAtMs - now} ms in the future`);
    if (cmd.issuedAtMs < this.startedAt - COMMAND_START_SKEW_MS)
      return new CommandRefused(
        'issued-before-start',
        `issued ${this.startedAt - cmd.issuedAtMs} ms before this node started; send it again`,
      );
    return undefined;
  }

  /** Whether the signer may command this node at all (capabilities aside). */
  private mayCommand(cmd: SignedCommand, certificateHex: string | undefined, now: number): boolean {
    if (this.o.membership.mode === 'open') return this.commandKeys.has(cmd.signerHex);
    return this.o.membership.admit(cmd.signerHex, certificateHex ? fromHex(certificateHex) : undefined, now)
      .ok;
  }

  private authorize(cmd: SignedCommand, certificateHex: string | undefined, now: number): void {
    const needs = COMMAND_CAPABILITY[cmd.command];
    if (this.o.membership.mode === 'open') {
      if (!this.commandKeys.has(cmd.signerHex))
        throw new CommandRefused(
          'not-admitted',
          this.commandKeys.size
            ? `signer ${cmd.signerHex} is not among this node's --command-keys`
            : 'this open network node has no --command-keys: it takes no commands',
        );
      return;
    }
    const cert = certificateHex ? fromHex(certificateHex) : undefined;
    const admission = this.o.membership.admit(cmd.signerHex, cert, now);
    if (!admission.ok)
      throw new CommandRefused('not-admitted', `signer ${cmd.signerHex} is not a member (${admission.code})`);
    const { member } = admission;
    if (!member.admin && !member.capabilities.has(needs))
      throw new CommandRefused('not-permitted', `${cmd.command} needs the "${needs}" capability`);
    if (!member.admin) {
      const why = adminOnlyMembershipChange(
        cmd,
        (key) => this.o.membership.memberAt(key, now),
        (key) => this.o.membership.certifiedCapabilities(key, now),
      );
      if (why) throw new CommandRefused('not-permitted', why);
    }
  }

  private remember(cmd: SignedCommand, now: number): void {
    if (this.seen.has(cmd.nonceHex))
      throw new CommandRefused('replayed', `nonce ${cmd.nonceHex} was run before`);
    if (this.seen.size >= this.maxNonces) {
      for (const [nonce, until] of this.seen) if (until <= now) this.seen.delete(nonce);
      if (this.seen.size >= this.maxNonces)
        throw new CommandRefused('busy', `${this.seen.size} unexpired commands already ran; try again later`);
    }
    // Kept until the command expires: from then on a replay is refused as expired. The codec
    // bounds that to MAX_COMMAND_TTL_MS (+ skew) from now.
    this.seen.set(cmd.nonceHex, cmd.expiresAtMs);
  }
}

import { CommandError } from '../jobs/admin-client.ts';
import type { AdminPayloads, AdminResults } from '../jobs/payloads.ts';
import type { AdminCommand } from '../jobs/queues.ts';
import { builder, type CairnContext } from './builder.ts';
import { commandError } from './errors.ts';

/** Runs an admin command on a node's queue; CommandErrors become coded GraphQL errors. */
async function run<C extends AdminCommand>(
  ctx: CairnContext,
  nodeId: string,
  command: C,
  payload: AdminPayloads[C],
): Promise<AdminResults[C]> {
  try {
    // Only nodes the index knows: a made-up id would open a queue in Redis that no one reads.
    if (
      nodeId.length > 128 ||
      !(await ctx.db.node.findUnique({ where: { id: nodeId }, select: { id: true } }))
    )
      throw new CommandError('unknown-node', `no node ${nodeId.slice(0, 128)} in the index`);
    return await ctx.admin.run(nodeId, command, payload, ctx.adminTimeoutMs);
  } catch (err) {
    throw commandError(err, nodeId, command);
  }
}

const ReconcileResult = builder.objectRef<AdminResults['admin.syncMempool']>('ReconcileResult').implement({
  description: 'Outcome of one mempool reconciliation with a peer.',
  fields: (t) => ({
    peerId: t.exposeString('peerId'),
    sent: t.exposeInt('sent'),
    received: t.exposeInt('received'),
    roundTrips: t.exposeInt('roundTrips'),
    bytes: t.exposeInt('bytes'),
  }),
});

const ChainSyncResult = builder.objectRef<AdminResults['admin.syncChain']>('ChainSyncResult').implement({
  fields: (t) => ({
    state: t.exposeString('state'),
    height: t.exposeInt('height'),
    headHash: t.exposeString('headHash'),
    outcome: t.exposeString('outcome', { nullable: true }),
  }),
});

const StatsReportResult = builder
  .objectRef<AdminResults['admin.reportStats']>('StatsReportResult')
  .implement({ fields: (t) => ({ seq: t.exposeInt('seq') }) });

const PeersResult = builder.objectRef<AdminResults['admin.blockPeers']>('PeersResult').implement({
  fields: (t) => ({
    peers: t.exposeStringList('peers', { description: 'The peer ids the command applied to.' }),
    blocked: t.exposeStringList('blocked', { description: "The node's block list afterwards." }),
  }),
});

const SubmitEntryResult = builder
  .objectRef<AdminResults['admin.submitEntry']>('SubmitEntryResult')
  .implement({
    fields: (t) => ({
      id: t.exposeString('id'),
      accepted: t.exposeBoolean('accepted'),
      reason: t.exposeString('reason', { nullable: true }),
    }),
  });

const InviteDeviceResult = builder
  .objectRef<AdminResults['admin.inviteDevice']>('InviteDeviceResult')
  .implement({
    description:
      'A single-use invitation for a new device, to redeem with `npm run node -- join <invitation>`.',
    fields: (t) => ({
      invitation: t.exposeString('invitation', { description: 'The invitation string (cairn-invite:…).' }),
      expiresAt: t.exposeString('expiresAt', { description: 'Until when it can be redeemed (ISO 8601).' }),
      memberUntil: t.exposeString('memberUntil', { description: 'When the membership it grants ends.' }),
    }),
  });

const RosterMember = builder
  .objectRef<AdminResults['admin.members']['members'][number]>('RosterMember')
  .implement({
    description: 'A device in the roster as an admin node sees it at its tip.',
    fields: (t) => ({
      publicKey: t.exposeString('publicKey'),
      name: t.exposeString('name'),
      role: t.exposeString('role', { description: 'submind | hub | backup | observer' }),
      capabilities: t.exposeStringList('capabilities'),
      admin: t.exposeBoolean('admin'),
      issuedAt: t.exposeString('issuedAt'),
      expiresAt: t.exposeString('expiresAt'),
      state: t.exposeString('state', { description: 'member | expired | revoked' }),
    }),
  });

builder.queryField('members', (t) =>
  t.field({
    type: [RosterMember],
    authScopes: { operator: true },
    description:
      "The roster at a node's tip: members with role, capabilities, expiry, and revoked keys. Operator.",
    args: { nodeId: t.arg.id({ required: true }) },
    resolve: async (_, a, ctx) => (await run(ctx, String(a.nodeId), 'admin.members', {})).members,
  }),
);

const SendMessageResult = builder
  .objectRef<AdminResults['admin.sendMessage']>('SendMessageResult')
  .implement({
    description: 'A message a node queued for an operator: its ids and first outcome (never its text).',
    fields: (t) => ({
      id: t.exposeString('id', { description: 'The (sender, recipient, sequence) id.' }),
      to: t.exposeString('to', { description: "The recipient's public key (hex)." }),
      toName: t.exposeString('toName', { nullable: true, description: "The recipient's member name." }),
      seq: t.exposeInt('seq'),
      status: t.exposeString('status', {
        description:
          "'delivered' (its signed receipt came back within a few seconds) | 'pending' (in the outbox)",
      }),
      contentId: t.exposeString('contentId', { nullable: true, description: 'The content hash relays see.' }),
      error: t.exposeString('error', { nullable: true, description: "The last delivery attempt's error." }),
    }),
  });

const FlStartResult = builder.objectRef<AdminResults['fl.startRound']>('FlStartResult').implement({
  fields: (t) => ({ roundIds: t.exposeStringList('roundIds') }),
});

const KeyValueInput = builder.inputType('KeyValueInput', {
  fields: (t) => ({ key: t.string({ required: true }), value: t.string({ required: true }) }),
});

builder.mutationFields((t) => ({
  syncMempool: t.field({
    type: ReconcileResult,
    authScopes: { operator: true },
    description:
      'Reconcile the mempool of a node with one peer (a random one when peerId is omitted). Operator.',
    args: { nodeId: t.arg.id({ required: true }), peerId: t.arg.string() },
    resolve: (_, a, ctx) =>
      run(ctx, String(a.nodeId), 'admin.syncMempool', a.peerId ? { peerId: a.peerId } : {}),
  }),
  syncChain: t.field({
    type: ChainSyncResult,
    authScopes: { operator: true },
    description: 'Run one chain sync round on a node. Operator.',
    args: { nodeId: t.arg.id({ required: true }) },
    resolve: (_, a, ctx) => run(ctx, String(a.nodeId), 'admin.syncChain', {}),
  }),
  reportStats: t.field({
    type: StatsReportResult,
    authScopes: { operator: true },
    description: 'Make a node send a stats report now. Operator.',
    args: { nodeId: t.arg.id({ required: true }) },
    resolve: (_, a, ctx) => run(ctx, String(a.nodeId), 'admin.reportStats', {}),
  }),
  submitEntry: t.field({
    type: SubmitEntryResult,
    authScopes: { operator: true },
    description: "Submit a knowledge entry through a node (signed with the node's key). Operator.",
    args: {
      nodeId: t.arg.id({ required: true }),
      content: t.arg.string({ required: true }),
      metadata: t.arg({ type: [KeyValueInput] }),
    },
    resolve: (_, a, ctx) =>
      run(ctx, String(a.nodeId), 'admin.submitEntry', {
        content: a.content,
        metadata: (a.metadata ?? []).map(({ key, value }) => ({ key, value })),
      }),
  }),
  inviteDevice: t.field({
    type: InviteDeviceResult,
    authScopes: { admin: true },
    description:
      "Invite a device through an admin's node: a single-use, expiring invitation with the role and capabilities given. Admin.",
    args: {
      nodeId: t.arg.id({ required: true }),
      name: t.arg.string({ required: true }),
      role: t.arg.string({ required: true, description: 'submind | hub | backup | observer' }),
      capabilities: t.arg.stringList({
        required: true,
        description: 'mine, train, coordinate, submit, relay, archive, message',
      }),
      expiresInDays: t.arg.int({ required: true, description: 'How long the membership lasts.' }),
    },
    resolve: (_, a, ctx) =>
      run(ctx, String(a.nodeId), 'admin.inviteDevice', {
        name: a.name,
        role: a.role as AdminPayloads['admin.inviteDevice']['role'],
        capabilities: a.capabilities as AdminPayloads['admin.inviteDevice']['capabilities'],
        expiresInMs: a.expiresInDays * 86_400_000,
      }),
  }),
  revokeDevice: t.field({
    type: SubmitEntryResult,
    authScopes: { admin: true },
    description:
      "Revoke a member through an admin's node: an admin-signed member.revoke entry; every node disconnects the device once it is mined. Admin.",
    args: {
      nodeId: t.arg.id({ required: true }),
      publicKey: t.arg.string({ required: true, description: "The device's public key (64 hex digits)." }),
    },
    resolve: (_, a, ctx) =>
      run(ctx, String(a.nodeId), 'admin.revokeDevice', { publicKey: a.publicKey.toLowerCase() }),
  }),
  blockPeers: t.field({
    type: PeersResult,
    authScopes: { admin: true },
    description: 'Block peers on a node. Admin.',
    args: { nodeId: t.arg.id({ required: true }), peerIds: t.arg.stringList({ required: true }) },
    resolve: (_, a, ctx) => run(ctx, String(a.nodeId), 'admin.blockPeers', { peerIds: a.peerIds }),
  }),
  unblockPeers: t.field({
    type: PeersResult,
    authScopes: { admin: true },
    description: 'Unblock peers on a node. Admin.',
    args: { nodeId: t.arg.id({ required: true }), peerIds: t.arg.stringList({ required: true }) },
    resolve: (_, a, ctx) => run(ctx, String(a.nodeId), 'admin.unblockPeers', { peerIds: a.peerIds }),
  }),
  sendMessage: t.field({
    type: SendMessageResult,
    authScopes: { admin: true },
    description:
      'Send a direct message as a node, to a member name, a peer id or a public key. Only a node started ' +
      'with --allow-operator-messages takes it; others refuse (extensions.refusal: disabled). The text ' +
      'crosses Redis in the signed command; the recipient reads it as from that node. Admin.',
    args: {
      nodeId: t.arg.id({ required: true }),
      to: t.arg.string({ required: true }),
      text: t.arg.string({ required: true }),
    },
    resolve: (_, a, ctx) => run(ctx, String(a.nodeId), 'admin.sendMessage', { to: a.to, text: a.text }),
  }),
  startFederatedRound: t.field({
    type: FlStartResult,
    authScopes: { admin: true },
    description: 'Start federated-learning rounds coordinated by a node. Admin.',
    args: {
      nodeId: t.arg.id({ required: true }),
      rounds: t.arg.int({ required: true }),
      participants: t.arg.stringList(),
      clipNorm: t.arg.float(),
      noiseMultiplier: t.arg.float(),
      targetQuantile: t.arg.float(),
      localSteps: t.arg.int({
        description:
          'Record mode: DP-SGD steps each participant runs per round (default 5). The noise stays the ' +
          "default plan's (ε = 3 over 100 steps), so 10 rounds of 10 steps spend what 20 of 5 do.",
      }),
      mode: t.arg.string({
        description:
          "DP mode: 'record' (DP-SGD on every participant, each charged to its own ledger) | 'update' " +
          "(whole updates clipped and noised: protects no record). Absent: the coordinator's own mode.",
      }),
    },
    resolve: (_, a, ctx) => {
      const payload: AdminPayloads['fl.startRound'] = { rounds: a.rounds };
      if (a.participants != null) payload.participants = a.participants;
      if (a.clipNorm != null) payload.clipNorm = a.clipNorm;
      if (a.noiseMultiplier != null) payload.noiseMultiplier = a.noiseMultiplier;
      if (a.targetQuantile != null) payload.targetQuantile = a.targetQuantile;
      if (a.localSteps != null) payload.localSteps = a.localSteps;
      // Checked against DP_MODES by the payload schema (INVALID_INPUT) before any job is sent.
      if (a.mode != null) payload.mode = a.mode as NonNullable<typeof payload.mode>;
      return run(ctx, String(a.nodeId), 'fl.startRound', payload);
    },
  }),
}));

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NEVER_EXPIRES } from '../node/chain/network-config.ts';
import type { NodeControl } from '../node/control.ts';
import { runAdminCommand } from './node-commands.ts';
import { AdminResult } from './payloads.ts';

// A node's operator surface as plain data: only the part a command reads is filled in.
const control = (part: Partial<NodeControl>) => part as NodeControl;

test('admin.members: a member that never expires gives a result the gateway accepts', async () => {
  const node = control({
    members: () => ({
      mode: 'roster',
      members: [
        {
          publicKeyHex: 'ab'.repeat(32),
          name: 'node-1',
          role: 'hub',
          capabilities: new Set(['mine', 'command'] as const),
          issuedAtMs: Date.UTC(2026, 0, 1),
          expiresAtMs: NEVER_EXPIRES,
          admin: true,
          state: 'member',
        },
      ],
    }),
  });
  const out = await runAdminCommand(node, 'admin.members', {}, () => 0);
  const parsed = AdminResult['admin.members'].safeParse(out);
  assert.ok(parsed.success, JSON.stringify(parsed.error?.issues));
  assert.equal(parsed.data.members[0]!.expiresAt, '9999-12-31T23:59:59.999Z');
});

test('a request the node cannot carry out fails for good (UnrecoverableError), bad args too', async () => {
  const node = control({
    reconcile: async () => {
      const { ControlError } = await import('../node/control.ts');
      throw new ControlError('no connected peer to reconcile with');
    },
  });
  await assert.rejects(
    runAdminCommand(node, 'admin.syncMempool', {}, () => 0),
    {
      name: 'UnrecoverableError',
      message: 'no connected peer to reconcile with',
    },
  );
  await assert.rejects(
    runAdminCommand(node, 'admin.blockPeers', { peerIds: [] }, () => 0),
    {
      name: 'UnrecoverableError',
      message: /invalid admin.blockPeers payload/,
    },
  );
});

/**
 * ATK-13 finding 1 (MEDIUM): one node's Redis user stops the shared Redis for every component.
 *
 * jobs/redis-acl.ts says a node user "cannot remove, move or overwrite anyone's report, pause the
 * queue or touch another node's queue". It can do worse: BullMQ needs EVAL, and the node user
 * has `+@all -@dangerous` on its own queue's keys (and EVAL on the reports queue). A Lua script
 * that writes one of its own keys and then loops is one EVAL: Redis runs nothing else while it
 * runs, answers every other client BUSY after 5 s, and the script cannot be stopped (SCRIPT KILL
 * answers UNKILLABLE once it wrote): only SHUTDOWN NOSAVE ends it. The collector, the gateway and
 * the other nodes lose their queues until an operator restarts Redis (losing what the AOF had not
 * fsynced). (Its memory half is fixed: compose sets --maxmemory 256mb with noeviction and node
 * users have no SETRANGE/APPEND-style writes, e2e/compose-redis-acl.test.ts; and with
 * busy-reply-threshold 1000 others get BUSY after 1 s instead of 5, and a script that wrote
 * nothing can be killed. This one, which writes first, cannot.) What stays open, and why: BullMQ
 * runs every queue operation as a Lua script (EVALSHA), so a node's user must be able to run
 * scripts, and ACL cannot restrict which; ACL checks each redis.call inside, not how long the
 * script loops. The README's Redis section says so.
 *
 * Figures (Redis 7.0.15, this machine): the collector's PING gets no answer within 2 s
 * (nor later: BUSY); SCRIPT KILL (another node user) → UNKILLABLE. Memory, before its fix:
 * SETRANGE 64 MiB → used_memory 1.0 MB → 85 MB (+80 MiB), accepted (67108865); now NOPERM.
 *
 * Run: npm exec -- node --test attack/control/redis-node-user-dos.attack.ts
 *
 * Fixes that make it pass: node users lose EVAL/EVALSHA/FCALL of scripts they choose (e.g. the
 * node reaches the reports queue only through a per-node queue the collector drains, and its own
 * queue is worked by the gateway/collector side, or BullMQ's scripts are loaded by a trusted user
 * and nodes get EVALSHA of exactly those digests: ACL cannot pin digests, so it needs a Redis
 * per trust domain), or nodes get no Redis user at all (reports over the node's API).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type AclRig, startComposeRedis, within } from './acl-rig.ts';

let rig: AclRig;
before(async () => {
  rig = await startComposeRedis();
});
after(async () => {
  await rig?.close();
});

test('a node user cannot stop Redis for the collector with one EVAL', async (t) => {
  const node1 = rig.as('node-1');
  const collector = rig.as('collector');
  const other = rig.as('node-2', { enableReadyCheck: false });
  assert.equal(await collector.ping(), 'PONG');
  const own = `cairn:node.${rig.ids['node-1']!.peerId.toString()}:x`;
  // Write one own key (allowed: the node's queue), then spin: unkillable from here on.
  node1.eval("redis.call('SET', KEYS[1], '1') while true do end", 1, own).catch(() => {});
  await new Promise((r) => setTimeout(r, 300));
  const pong = await within(
    collector.ping().catch((e: Error) => e.message),
    2_000,
  );
  const kill = await within(
    other.script('KILL').catch((e: Error) => e.message),
    7_000,
  );
  t.diagnostic(`collector PING while node-1's script runs: ${String(pong)}; SCRIPT KILL: ${String(kill)}`);
  assert.equal(pong, 'PONG', 'the collector must still be served while a node user runs a script');
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { Counter, Registry } from 'prom-client';
import { toHex } from '../node/chain/bytes.ts';
import { ControlError, type NodeControl } from '../node/control.ts';
import { identityFromSeed } from '../node/identity/identity.ts';
import { testKey } from '../node/testing/forge.ts';
import { signCommand } from './command-codec.ts';
import { RefusalLog } from './command-refusal-log.ts';
import { runCommandJob } from './command-runner.ts';
import { CommandVerifier, commandJobId } from './command-verifier.ts';
import { checkAnswer, ResultRefused } from './result-envelope.ts';

const node = await identityFromSeed(new Uint8Array(32).fill(21));
const NODE = node.peerId.toString();
const gateway = testKey(900);

function rig(control: Partial<NodeControl>) {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  const registry = new Registry();
  const counter = new Counter({
    name: 'cairn_admin_commands_total',
    help: 'test',
    labelNames: ['command', 'outcome'] as const,
    registers: [registry],
  });
  const deps = {
    verifier: new CommandVerifier({
      nodeId: NODE,
      membership: {
        mode: 'open' as const,
        admit: () => {
          throw new Error('open networks take command keys only');
        },
        memberAt: () => undefined,
        certifiedCapabilities: () => undefined,
      },
      commandKeys: [toHex(gateway.publicKey)],
    }),
    control: control as NodeControl,
    key: node.signingKey,
    counter,
    refusals: new RefusalLog(log),
    log,
    reportStats: () => 7,
  };
  const count = async (outcome: string) =>
    (await counter.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
  return { deps, lines, count };
}

const job = (cmd: ReturnType<typeof signCommand>, id = `cmd.${cmd.nonceHex}`) => ({
  name: cmd.command,
  id,
  data: { command: toHex(cmd.encoded) },
});

test('a verified command is answered signed and sealed; a failure is a signed failure', async () => {
  const { deps, count } = rig({
    syncChain: async () => ({ state: 'synced', height: 3, headHash: 'ab'.repeat(32), outcome: null }),
    reconcile: async () => {
      throw new ControlError('no connected peer to reconcile with');
    },
  });
  const ok = signCommand({ command: 'admin.syncChain', target: NODE, args: {}, ttlMs: 30_000 }, gateway);
  const r1 = await runCommandJob(job(ok), deps);
  assert.equal(r1.ok, true);
  assert.deepEqual(checkAnswer(r1.answer, ok, ok.reply), {
    completed: { state: 'synced', height: 3, headHash: 'ab'.repeat(32), outcome: null },
  });
  const bad = signCommand({ command: 'admin.syncMempool', target: NODE, args: {}, ttlMs: 30_000 }, gateway);
  const r2 = await runCommandJob(job(bad), deps);
  assert.equal(r2.ok, false);
  assert.deepEqual(checkAnswer(r2.answer, bad, bad.reply), { failed: 'no connected peer to reconcile with' });
  assert.equal(await count('ok'), 1);
  assert.equal(await count('failed'), 1);
  // The same kind of signed bytes under an id the gateway does not wait on: refused and counted.
  const moved = signCommand({ command: 'admin.syncChain', target: NODE, args: {}, ttlMs: 30_000 }, gateway);
  await assert.rejects(runCommandJob(job(moved, 'attacker.1'), deps), /command refused \(wrong-job-id\)/);
  assert.equal(await count('wrong-job-id'), 1);
  assert.equal(await count('ok'), 1, 'the moved command did not run');
});

test('a flood of refused jobs: every one counted, one log line per code', async () => {
  const { deps, lines, count } = rig({});
  const stranger = testKey(901);
  const N = 2000;
  for (let i = 0; i < N; i++) {
    const unsigned = { name: 'admin.syncChain', id: `u${i}`, data: {} };
    await assert.rejects(runCommandJob(unsigned, deps), { name: 'CommandRefused' });
    const cmd = signCommand({ command: 'admin.syncChain', target: NODE, args: {}, ttlMs: 30_000 }, stranger);
    await assert.rejects(runCommandJob(job(cmd, `s${i}`), deps), { name: 'CommandRefused' });
  }
  assert.equal(await count('unsigned'), N);
  assert.equal(await count('not-admitted'), N);
  assert.deepEqual(
    lines.map((l) => [l.msg, l.code, l.job]),
    [
      ['admin command refused', 'unsigned', 'u0'],
      ['admin command refused', 'not-admitted', 's0'],
    ],
  );
  deps.refusals.flush();
  assert.deepEqual(
    lines.slice(2).map((l) => [l.code, l.count]),
    [
      ['unsigned', N - 1],
      ['not-admitted', N - 1],
    ],
  );
});

test('an allowed signer’s expired or replayed command gets a signed refusal; a stranger’s stays unsigned', async () => {
  const { deps, count } = rig({
    syncChain: async () => ({ state: 'synced', height: 3, headHash: 'ab'.repeat(32), outcome: null }),
  });
  // Expired: issued a minute ago for 30 s (and after the verifier started: not a restart case).
  const started = Date.now();
  const expired = signCommand(
    { command: 'admin.syncChain', target: NODE, args: {}, ttlMs: 1, nowMs: started },
    gateway,
  );
  await new Promise((r) => setTimeout(r, 5));
  const r1 = await runCommandJob(job(expired, 'cmd.e'), deps);
  assert.equal(r1.ok, false);
  const refused = checkAnswer(r1.answer, expired, expired.reply, 'cmd.e');
  assert.ok('refused' in refused && refused.refused === 'expired', JSON.stringify(refused));

  // Replayed: the second job with the same command.
  const cmd = signCommand({ command: 'admin.syncChain', target: NODE, args: {}, ttlMs: 30_000 }, gateway);
  // Under the id the gateway waits on (command-verifier.ts refuses any other as wrong-job-id).
  const id = commandJobId(cmd.nonceHex);
  assert.equal((await runCommandJob(job(cmd, id), deps)).ok, true);
  const r2 = await runCommandJob(job(cmd, id), deps);
  const again = checkAnswer(r2.answer, cmd, cmd.reply, id);
  assert.ok('refused' in again && again.refused === 'replayed');
  // The refusal answers the job it was given: copied into another job's stream it is not believed.
  assert.throws(
    () => checkAnswer(r2.answer, cmd, cmd.reply, 'cmd.a'),
    (err: unknown) => err instanceof ResultRefused && err.code === 'wrong-job',
  );
  assert.equal(await count('expired'), 1);
  assert.equal(await count('replayed'), 1);

  // A stranger's expired command: nothing signed (no signature on demand for anyone's junk).
  const junk = signCommand(
    { command: 'admin.syncChain', target: NODE, args: {}, ttlMs: 1, nowMs: started },
    testKey(901),
  );
  await assert.rejects(runCommandJob(job(junk, 'cmd.j'), deps), {
    name: 'CommandRefused',
    message: /^command refused \(expired\)/,
  });
});

/**
 * Crash safety: a child process (crash-child.ts) imports and commits blocks as fast as it can
 * and is killed with SIGKILL at seeded random moments. After every kill the store must hold a
 * consistent prefix — whole blocks only, a head on a stored chain back to genesis, stale
 * reasons, orphans and mempool that agree with that head — must have kept everything the child
 * reported as committed, and must restore into a Chain whose tip is the stored head. The next
 * round resumes from that state.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeBlock } from '../chain/block-codec.ts';
import { bytesEqual, concatBytes, type Hex, toHex } from '../chain/bytes.ts';
import { Chain } from '../chain/chain.ts';
import { decodeEntry } from '../chain/entry-codec.ts';
import { genesisBlock } from '../chain/genesis.ts';
import { chainIdHex, chainIdOf } from '../chain/network-config.ts';
import { CachedVerifier } from '../chain/signature-cache.ts';
import { validateBlockIntrinsic } from '../chain/validation.ts';
import { TEST_NOW, testNetwork } from '../testing/forge.ts';
import { seededRandom } from '../testing/prng.ts';
import { NodeStore } from './node-store.ts';

const ROOT = path.join(import.meta.dirname, '../..');
const SEED = 20_240_611;
const ROUNDS = 6;
const config = testNetwork();
const GENESIS = genesisBlock(config);

const rng = seededRandom;

interface Tip {
  readonly height: number;
  readonly hashHex: Hex;
}

interface Round {
  readonly started: Tip;
  /** The last `committed` line the child printed before it died. */
  readonly reported: Tip | undefined;
  readonly commits: number;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
}

/** Runs the child until it reports it is running, lets it work for `delayMs`, then SIGKILLs it. */
async function runAndKill(dir: string, seed: number, delayMs: number): Promise<Round> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'node/store/crash-child.ts', dir, String(seed)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let started: Tip | undefined;
  let reported: Tip | undefined;
  let commits = 0;
  let stderr = '';
  let buffered = '';
  let startedOk!: () => void;
  let startFailed!: (err: Error) => void;
  const running = new Promise<void>((resolve, reject) => {
    startedOk = resolve;
    startFailed = reject;
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    buffered += s;
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      const [word, height, hashHex] = line.split(' ');
      const tip = { height: Number(height), hashHex: hashHex! };
      if (word === 'running') {
        started = tip;
        startedOk();
      } else if (word === 'committed') {
        reported = tip;
        commits++;
      }
    }
  });
  const closed = new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('close', (_code, signal) => resolve(signal)),
  );
  void closed.then(() => startFailed(new Error(`the child exited before running:\n${stderr}`)));
  const startTimer = setTimeout(() => startFailed(new Error('the child did not start in 30 s')), 30_000);
  try {
    await running;
  } finally {
    clearTimeout(startTimer);
  }
  await sleep(delayMs);
  child.kill('SIGKILL');
  // 'close' comes after stdout has ended: every line the child wrote has been read.
  const signal = await closed;
  return { started: started!, reported, commits, signal, stderr };
}

const verifier = new CachedVerifier();
const verified = new Set<Hex>();

/** Reopens the store after a kill and checks that it holds a consistent prefix; returns its head. */
async function checkStore(file: string, reported: Tip | undefined): Promise<Tip & { blocks: number }> {
  const store = await NodeStore.open({
    file,
    chainIdHex: chainIdHex(config),
    genesisHashHex: GENESIS.hashHex,
  });
  try {
    const rows = await (await store.inspect()).block.findMany();
    const byHash = new Map(rows.map((r) => [toHex(r.hash), r]));
    // Whole blocks only: every column agrees with the raw bytes, and the block is valid.
    for (const [hashHex, row] of byHash) {
      const b = decodeBlock(row.raw);
      assert.equal(b.hashHex, hashHex, 'hash column = hash of the raw header');
      assert.ok(bytesEqual(row.header, b.headerBytes), `header column of ${hashHex}`);
      assert.ok(
        bytesEqual(row.entryIds, concatBytes(...b.entries.map((e) => e.id))),
        `entryIds of ${hashHex}`,
      );
      assert.equal(row.height, b.header.height);
      assert.ok(bytesEqual(row.prevHash, b.header.prevHash));
      const parent = toHex(b.header.prevHash);
      assert.ok(parent === GENESIS.hashHex || byHash.has(parent), `parent of ${hashHex} is stored`);
      if (!verified.has(hashHex)) {
        validateBlockIntrinsic(b, config, chainIdOf(config), TEST_NOW, verifier);
        verified.add(hashHex);
      }
    }

    const head = await (await store.inspect()).chainHead.findUnique({ where: { id: 1 } });
    let tip: Tip = { height: 0, hashHex: GENESIS.hashHex };
    if (!head) {
      assert.equal(rows.length, 0, 'blocks were stored without a head');
    } else {
      tip = { height: head.height, hashHex: toHex(head.hash) };
      const headRow = byHash.get(tip.hashHex);
      assert.ok(headRow, 'the head row points to a stored block');
      assert.equal(headRow.height, head.height);
    }

    // Genesis to head, linked by prevHash, none stale; every other block stale.
    const main = new Set<Hex>();
    const mainEntries = new Set<Hex>();
    for (let h = tip.hashHex, height = tip.height; h !== GENESIS.hashHex; height--) {
      const row = byHash.get(h);
      assert.ok(row, `main-chain block at height ${height} is stored`);
      assert.equal(row.height, height);
      assert.equal(row.staleReason, null, `main-chain block at height ${height} is not stale`);
      main.add(h);
      for (let i = 0; i < row.entryIds.length; i += 32)
        mainEntries.add(toHex(row.entryIds.subarray(i, i + 32)));
      h = toHex(row.prevHash);
      if (h === GENESIS.hashHex) assert.equal(height, 1, 'the chain reaches genesis at height 0');
    }
    assert.equal(main.size, tip.height);
    for (const [hashHex, row] of byHash) {
      if (main.has(hashHex)) continue;
      assert.ok(
        row.staleReason === 'reorged-out' || row.staleReason === 'side-chain',
        `off-chain block ${hashHex} has a stale reason (${row.staleReason})`,
      );
    }

    // Durability: everything the child reported as committed is there.
    if (reported) {
      assert.ok(tip.height >= reported.height, `head ${tip.height} < reported ${reported.height}`);
      assert.ok(
        reported.hashHex === GENESIS.hashHex || byHash.has(reported.hashHex),
        'the reported tip is stored',
      );
    }

    // Orphans and mempool agree with the blocks.
    for (const o of await (await store.inspect()).orphan.findMany()) {
      const b = decodeBlock(o.raw);
      assert.equal(b.hashHex, toHex(o.hash));
      assert.ok(bytesEqual(o.parentHash, b.header.prevHash));
      assert.equal(byHash.has(b.hashHex), false, 'an orphan is not also a stored block');
      const parent = toHex(o.parentHash);
      assert.ok(parent !== GENESIS.hashHex && !byHash.has(parent), 'an orphan whose parent is stored');
    }
    for (const m of await (await store.inspect()).mempoolEntry.findMany()) {
      const e = decodeEntry(m.raw);
      assert.equal(e.idHex, toHex(m.id));
      assert.equal(mainEntries.has(e.idHex), false, 'a mempool entry that the main chain includes');
    }

    // A node restores from it and lands on the stored head.
    const chain = new Chain({ config, loadBlock: (h) => store.loadBlock(h), now: () => TEST_NOW });
    chain.restore(await store.load());
    assert.equal(chain.tip.hashHex, tip.hashHex);
    assert.equal(chain.tip.height, tip.height);
    assert.equal(chain.tree.size, rows.length + 1);
    return { ...tip, blocks: rows.length };
  } finally {
    await store.close();
  }
}

test(`SIGKILL while committing leaves a consistent, durable prefix (seed ${SEED})`, {
  timeout: 120_000,
}, async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-crash-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'store.db');
  const rand = rng(SEED);
  let expected: Tip = { height: 0, hashHex: GENESIS.hashHex };
  let total = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const delay = 50 + Math.floor(rand() * 750);
    const r = await runAndKill(dir, SEED + round, delay);
    assert.equal(r.signal, 'SIGKILL', `round ${round}: the child died on its own:\n${r.stderr}`);
    assert.deepEqual(r.started, expected, `round ${round} resumes from the state found after the last kill`);
    const found = await checkStore(file, r.reported);
    t.diagnostic(
      `round ${round}: killed after ${delay} ms, ${r.commits} commits reported (last height ${r.reported?.height ?? '-'}), store head ${found.height}, ${found.blocks} blocks`,
    );
    total += r.commits;
    expected = { height: found.height, hashHex: found.hashHex };
  }
  assert.ok(
    total >= ROUNDS,
    `only ${total} commits in ${ROUNDS} rounds: the kills came too early to test much`,
  );
  assert.ok(expected.height > 100, 'the chain grew across rounds');
});

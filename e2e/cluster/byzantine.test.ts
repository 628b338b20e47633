/**
 * A Byzantine peer against a real two-node cluster (one miner, one follower, on loopback).
 *
 * The attackers are libp2p nodes in this process (the node's own host: TCP, noise, yamux,
 * gossipsub) that dial only the follower, the "victim". The main one, mallory, first gossips a
 * valid block, which the victim accepts and relays to the miner (so its gossip demonstrably
 * reaches both honest nodes). Then, one behaviour at a time, it gossips a block with a forged
 * miner signature, one without proof of work and an oversized one, sends garbage req/resp
 * frames, and lies in its status, serving nothing and then junk when the victim tries to sync
 * from it. Each is rejected for its own reason and penalised (the victim's log line with the
 * score, /status, the Prometheus counters), no forged block reaches the miner or either chain,
 * and the accumulated penalties get it banned: listed in /status, counted, its redials refused.
 * Other identities, each on a clean score: oscar sends a 2 MiB gossip frame (past the node's
 * frame bound, dropped by gossipsub itself) and is penalised; lenny lies in its status and then
 * gives no fork point, jack lies and then serves junk for the promised blocks, and each is
 * penalised until banned; trent gossips a block of another chain and sybil sends only a status
 * of another chain, and each is banned at once. Throughout, the honest nodes keep mining and
 * following one head, and shut down cleanly with no error in their logs.
 *
 * The cluster is a roster network and every attacker an admitted member (a pool identity of
 * the cluster roster): mallory and oscar at fixed indices, the others the next free ones. A
 * stranger is refused at connect (membership.test.ts).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { signBlock } from '../../node/chain/authoring.ts';
import { sealBlock } from '../../node/chain/block-codec.ts';
import { toHex } from '../../node/chain/bytes.ts';
import { Chain } from '../../node/chain/chain.ts';
import { genesisBlock } from '../../node/chain/genesis.ts';
import {
  chainIdHex,
  chainIdOf,
  DEFAULT_NETWORK,
  type NetworkConfig,
} from '../../node/chain/network-config.ts';
import { MAX_TARGET, meetsTarget, workForTarget } from '../../node/chain/pow.ts';
import { sign } from '../../node/chain/signature.ts';
import type { SealedBlock } from '../../node/chain/types.ts';
import { decodeHashes, encodeBlockRef, type Status } from '../../node/p2p/messages.ts';
import { STATUS } from '../../node/p2p/protocols.ts';
import { type ForgeOptions, testKey, unmineHeader } from '../../node/testing/forge.ts';
import {
  ByzantinePeer,
  blockOfSize,
  ChainMirror,
  filler,
  forgeAsync,
  type RawHandler,
  removeDir,
  successFrame,
} from './byzantine-peer.ts';
import { assertDeltas, assertDrop, counters, deltas, type Penalty, VictimWatch } from './byzantine-watch.ts';
import { Cluster, type ClusterNode } from './harness.ts';

/** Pool identities of the cluster roster the insiders take (the two nodes take 0 and 1). */
const INSIDER_SEEDS = { mallory: 2, oscar: 3 } as const;

test('a Byzantine peer is rejected, penalised and banned; the honest nodes are unaffected', {
  timeout: 180_000,
}, async (t) => {
  const started = Date.now();
  const cluster = new Cluster();
  // Every attacker is an admitted member (a stranger is refused at connect: membership.test.ts):
  // insiders are the threat that remains. Pool identities from 4 on, after the nodes and the two above.
  let nextInsider = 4;
  const insider = () => cluster.roster?.seeds[nextInsider++];
  const attackDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-byzantine-'));
  const attackers: ByzantinePeer[] = [];
  let passed = false;
  t.after(async () => {
    for (const a of attackers) await a.stop();
    await cluster.stopAll();
    await removeDir(attackDir);
    // The node logs are the evidence of a failure: kept then (and with CAIRN_KEEP_RUN_DIR).
    if (!passed || !(await cluster.removeRunDir())) t.diagnostic(`logs kept in ${cluster.runDir}`);
  });
  const network = { ...DEFAULT_NETWORK, ...cluster.network } as NetworkConfig;
  // Another network: other name, and a target so easy that its blocks are mined at once.
  const impostor: NetworkConfig = {
    ...network,
    name: `${network.name} (impostor)`,
    initialTarget: MAX_TARGET >> 2n,
    maxTarget: MAX_TARGET >> 2n,
  };
  const genesis = genesisBlock(network);
  const bulk = filler(network.maxBlockBytes - 20_000);

  const [miner, victim] = await cluster.start(2, (i) =>
    i === 0 ? { name: 'miner', mine: true } : { name: 'victim' },
  );
  assert.ok(miner && victim);
  const watch = new VictimWatch(victim);
  const { penalties, log: victimLog, penaltiesOf, lastScore, waitPenalty, bannedEntry } = watch;
  await cluster.waitForConnected({ timeoutMs: 30_000 });
  const converged = await cluster.waitForConverged({ minHeight: 2, timeoutMs: 60_000 });
  const startHeight = converged.statuses.victim!.height;
  assert.equal((await victim.getJson<{ chainId: string }>('/status')).chainId, chainIdHex(network));
  const minerBefore = await counters(miner);
  const heights: { step: string; miner: number; victim: number }[] = [];

  // ---- Observations ----
  const forged: { what: string; hash: string }[] = [];
  /** Neither honest node has the block on its main chain. */
  const assertNotAdopted = async (block: SealedBlock, what: string) => {
    for (const node of [victim, miner]) {
      const { height } = await node.status();
      const recent = await node.chain(Math.max(0, height - 30), height);
      assert.ok(!recent.blocks.some((b) => b.hash === block.hashHex), `${node.name} adopted ${what}`);
    }
  };

  /** After a penalty that dropped `peer`, waits until it has noticed, so that its next move starts afresh. */
  const settle = async (peer: ByzantinePeer, p: Penalty) => {
    const deadline = Date.now() + 3_000;
    while (p.verdict !== 'ok' && peer.isConnected(victim) && Date.now() < deadline) await sleep(50);
  };

  /** Gossips a block (or raw bytes) from `peer`; checks that it went to the victim and nowhere else. */
  const gossip = async (peer: ByzantinePeer, data: SealedBlock | Uint8Array, what: string) => {
    await peer.connect(victim);
    const bytes = data instanceof Uint8Array ? data : data.encoded;
    const to = await peer.publishBlockBytes(bytes);
    assert.deepEqual(to, [victim.peerId], `${what} was sent to the victim (and only to it)`);
  };

  /** Redials must fail: the connection is refused, or closed before a request gets through. */
  const assertRefused = async (peer: ByzantinePeer) => {
    const dial = await peer.dial(victim).then(
      () => 'connected',
      (err: Error) => err.message,
    );
    const answer = await peer.request(victim, STATUS, honestStatus).then(
      () => 'answered',
      (err: Error) => err.message,
    );
    assert.notEqual(answer, 'answered', `${peer.name}'s status request after the ban was answered`);
    await sleep(300);
    assert.equal(
      peer.isConnected(victim),
      false,
      `${peer.name} is still connected after its ban (dial: ${dial})`,
    );
    const peers = (await victim.status()).peers.map((p) => p.peerId);
    assert.ok(!peers.includes(peer.peerId), `the victim lists banned ${peer.name} among its peers`);
    return dial;
  };

  // Steps run in order; a failed step of the main attacker skips its later ones (they build on
  // its score), the other identities' steps run regardless.
  let malloryFailed = false;
  let anyFailed = false;
  const step = (name: string, fn: () => Promise<void>, { mallorys = false, record = true } = {}) =>
    t.test(
      name,
      { skip: mallorys && malloryFailed ? 'an earlier step of the attacker failed' : false },
      async () => {
        try {
          await fn();
          if (record) {
            const [m, v] = await Promise.all([miner.status(), victim.status()]);
            heights.push({ step: name, miner: m.height, victim: v.height });
          }
        } catch (err) {
          anyFailed = true;
          if (mallorys) malloryFailed = true;
          throw err;
        }
      },
    );

  // ---- The attacker, well-behaved at first ----

  // Mallory is an insider: an admitted member of the roster (insiders are the threat that
  // remains once strangers are refused), so its valid blocks are valid; the others are strangers.
  const mallory = await ByzantinePeer.start('mallory', network, attackDir, {
    seed: cluster.roster?.seeds[INSIDER_SEEDS.mallory],
  });
  attackers.push(mallory);
  const honestStatus: Status = {
    chainId: chainIdOf(network),
    genesisHash: genesis.hash,
    headHash: genesis.hash,
    headHeight: 0,
    totalWork: workForTarget(network.initialTarget),
    role: 'submind',
    capabilities: [],
  };
  const attack: { lie?: Status; rangeAnswers: number } = { rangeAnswers: 0 };
  await mallory.serve('status', () => [successFrame(STATUS.encodeResponse(attack.lie ?? honestStatus))]);
  /** The true fork point with the victim (the first locator hash on its main chain), as an honest peer answers. */
  const trueForkPoint = async (req: Uint8Array) => {
    const locator = decodeHashes(req).map((h) => toHex(h));
    const { height } = await victim.status();
    const main = (await victim.chain(Math.max(0, height - 64), height)).blocks;
    const at = new Map(main.map((b) => [b.hash, b.height]));
    const hit = locator.find((h) => at.has(h)) ?? genesis.hashHex;
    return [successFrame(encodeBlockRef({ height: at.get(hit) ?? 0, hash: Buffer.from(hit, 'hex') }))];
  };
  const junk = () => [successFrame(randomBytes(200)), successFrame(randomBytes(300))];
  // A correct fork point, so that the victim goes on to ask for the blocks a lie promises.
  await mallory.serve('ancestor', trueForkPoint);
  await mallory.serve('blocks-by-range', () => {
    // First nothing at all, then junk.
    attack.rangeAnswers++;
    return attack.rangeAnswers === 1 ? [] : junk();
  });
  await mallory.connect(victim);
  const mirror = new ChainMirror(mallory, victim);
  assert.ok((await mirror.catchUp()) >= startHeight, 'the victim serves its chain to a well-behaved peer');
  const key = mallory.identity.signingKey;
  /** A valid block on the victim's current tip, mined and signed by the attacker (then tampered with). */
  const onTip = (opts: ForgeOptions = {}) => mirror.forgeOnTip(key, opts);

  await step(
    'control: a valid block from the attacker is accepted and relayed to the miner',
    async () => {
      // A fork one block below the victim's tip: a side chain within the work margin, so it is
      // kept and relayed (a fork from genesis is not, once the tip is more than a few blocks up).
      // Mallory mines in this process while the miner mines on its own thread: on a loaded
      // machine the tip can move past the margin meanwhile and the block comes too late (ignored
      // as low-work, rightly). Then mallory tries again on the new tip, up to 3 times.
      let lostRaces = 0;
      for (let attempt = 1; ; attempt++) {
        const before = await counters(victim);
        const since = penalties.length;
        await mirror.catchUp();
        const forkAt = mirror.chain.tip.parent ?? mirror.chain.tip;
        const side = await forgeAsync(mirror.chain, forkAt, key, { gapMs: 777 + attempt });
        await gossip(mallory, side, 'a valid side block');
        const relayed = await cluster
          .waitFor(async () => (await counters(miner)).sideFromGossip > minerBefore.sideFromGossip, {
            timeoutMs: 10_000,
            description: 'the miner gets the attacker’s valid side block through the victim',
          })
          .then(
            () => true,
            (err) => {
              if (attempt >= 3) throw err;
              return false;
            },
          );
        if (!relayed) {
          lostRaces++;
          t.diagnostic(`control attempt ${attempt}: the tip moved past the margin while mallory mined`);
          continue;
        }
        const d = deltas(await counters(victim), before);
        assert.ok(d.accepted >= 1);
        assert.deepEqual([d.rejected, d.low, d.mid, d.fatal, d.errors], [0, 0, 0, 0, 0]);
        // No penalty for a valid block (a timeout on a loaded machine would be high-tolerance).
        const mine = penalties.slice(since).filter((p) => p.peer === mallory.peerId);
        assert.ok(
          mine.every((p) => p.action === 'high-tolerance'),
          `penalised for a valid block: ${JSON.stringify(mine)}`,
        );
        const seen = (await victim.status()).peers.find((p) => p.peerId === mallory.peerId);
        // A lost race costs mallory a low-tolerance penalty (its block was stale junk): -10 each.
        assert.ok(
          seen && seen.score > -5 - 10 * lostRaces,
          `the victim lists the attacker, score ${seen?.score}`,
        );
        break;
      }
    },
    { mallorys: true },
  );

  await step(
    '(1) a block with a forged miner signature',
    async () => {
      const genuine = await onTip();
      const bad = sealBlock({
        header: genuine.header,
        signature: sign(genuine.hash, testKey(99)),
        entries: genuine.entries,
      });
      forged.push({ what: 'bad signature', hash: bad.hashHex });
      const before = await counters(victim);
      const since = penalties.length;
      const score = lastScore(mallory);
      await gossip(mallory, bad, 'the block with a bad signature');
      const p = await waitPenalty(mallory, /invalid block: bad-block-signature/, since);
      assertDrop(p, score, 'low-tolerance');
      await settle(mallory, p);
      assert.equal(p.verdict, 'ok');
      const after = await counters(victim);
      assertDeltas(after, before, { rejected: 1, low: 1, errors: 1 });
      assert.equal(after.error('bad-block-signature') - before.error('bad-block-signature'), 1);
      const seen = (await victim.status()).peers.find((x) => x.peerId === mallory.peerId);
      assert.ok(
        seen && Math.abs(seen.score - p.score) < 0.1,
        `score in /status: ${seen?.score}, logged ${p.score}`,
      );
      await assertNotAdopted(bad, 'the block with a bad signature');
    },
    { mallorys: true },
  );

  await step(
    '(2) a block without proof of work',
    async () => {
      const unmined = await onTip({ mine: false });
      const bad = signBlock(unmineHeader(unmined.header), [], key);
      assert.ok(!meetsTarget(bad.hash, bad.header.target));
      forged.push({ what: 'bad proof of work', hash: bad.hashHex });
      const before = await counters(victim);
      const since = penalties.length;
      const score = lastScore(mallory);
      await gossip(mallory, bad, 'the block without proof of work');
      const p = await waitPenalty(mallory, /invalid block: insufficient-work/, since);
      assertDrop(p, score, 'low-tolerance');
      await settle(mallory, p);
      assert.equal(p.verdict, p.score <= -20 ? 'disconnect' : 'ok', 'dropped at -20, not banned');
      const after = await counters(victim);
      assertDeltas(after, before, { rejected: 1, low: 1, errors: 1 });
      assert.equal(after.error('insufficient-work') - before.error('insufficient-work'), 1);
      await assertNotAdopted(bad, 'the block without proof of work');
    },
    { mallorys: true },
  );

  await step(
    '(3) an oversized block (larger than maxBlockBytes, within the gossip frame limit)',
    async () => {
      await mirror.catchUp();
      const tip = mirror.chain.tip;
      const big = await blockOfSize(
        (opts) => forgeAsync(mirror.chain, tip, key, opts),
        bulk,
        network.maxBlockBytes + 1024,
      );
      assert.ok(
        big.encoded.length > network.maxBlockBytes && big.encoded.length < network.maxBlockBytes + 2048,
        `oversized block of ${big.encoded.length} bytes`,
      );
      forged.push({ what: 'oversized block', hash: big.hashHex });
      const before = await counters(victim);
      const since = penalties.length;
      const score = lastScore(mallory);
      await gossip(mallory, big, 'the oversized block');
      const p = await waitPenalty(mallory, /oversized block gossip/, since);
      assertDrop(p, score, 'mid-tolerance');
      await settle(mallory, p);
      const after = await counters(victim);
      // Refused on its size alone: never decoded, never validated.
      assertDeltas(after, before, { rejected: 1, mid: 1, errors: 0 });
      await assertNotAdopted(big, 'the oversized block');
    },
    { mallorys: true },
  );

  await step(
    '(3b) a 2 MiB gossip frame (below gossipsub’s 4 MiB limit), from a second identity',
    async () => {
      // Larger than the node's gossip frame bound, so gossipsub drops it before any validator:
      // a separate identity, to keep the attacker's score arithmetic to the listed behaviours.
      const oscar = await ByzantinePeer.start('oscar', network, attackDir, {
        seed: cluster.roster?.seeds[INSIDER_SEEDS.oscar],
      });
      attackers.push(oscar);
      const before = await counters(victim);
      const since = penalties.length;
      await gossip(oscar, randomBytes(2 * 1024 * 1024), 'the 2 MiB gossip message');
      const p = await waitPenalty(oscar, /oversized gossip frame/, since);
      assertDrop(p, 0, 'mid-tolerance');
      assert.equal(p.verdict, 'ok', 'one oversized frame is not worth a ban');
      const after = await counters(victim);
      assertDeltas(after, before, { rejected: 0, mid: 1, low: 0, fatal: 0, errors: 0 });
      await oscar.stop();
    },
  );

  await step(
    '(4) garbage req/resp frames',
    async () => {
      /** Sends raw bytes on the blocks-by-range protocol; expects refusal and a penalty matching `reason`. */
      const garbage = async (bytes: Uint8Array, what: string, reason: RegExp) => {
        const since = penalties.length;
        const score = lastScore(mallory);
        await mallory.dial(victim);
        const answer = await mallory.rawRequest(victim, 'blocks-by-range', bytes);
        // The victim answers "invalid request" (result 1) or just drops the stream: never data.
        assert.ok(
          answer.frames.every((f) => f[0] === 1),
          `${what}: answer ${JSON.stringify(answer)}`,
        );
        const p = await waitPenalty(mallory, reason, since).catch((err: Error) => {
          throw new Error(`${err.message}\n${what}: answer ${JSON.stringify(answer)}`);
        });
        assertDrop(p, score, 'low-tolerance');
        await settle(mallory, p);
        return p;
      };
      // A length prefix far longer than the protocol's bound (a 5-byte varint where 1 byte is the limit).
      await garbage(
        Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f, ...randomBytes(32)]),
        'malformed length prefix',
        /^blocks-by-range: .*length/i,
      );
      // A well-framed request of random bytes.
      const noise = randomBytes(9);
      noise[0] = 0x42;
      const p = await garbage(
        Uint8Array.from([noise.length, ...noise]),
        'random request bytes',
        /^blocks-by-range: unsupported-version/,
      );
      assert.notEqual(p.verdict, 'ban', 'not banned yet');
      assert.equal(await bannedEntry(mallory), undefined);
    },
    { mallorys: true },
  );

  /** A status that claims far more work and height than the victim has: a head nobody has. */
  const lieFor = async (): Promise<Status> => {
    const v = await victim.status();
    return {
      ...honestStatus,
      headHash: randomBytes(32),
      headHeight: v.height + 100_000,
      totalWork: BigInt(v.totalWork) << 40n,
      role: 'hub',
      capabilities: ['mine'],
    };
  };
  /**
   * Repeats `liar`'s status to the victim (redialling whenever it is dropped, as a persistent
   * liar would) until the victim bans it; fails after `timeoutMs` saying what the victim's sync did.
   */
  const lieUntilBanned = async (liar: ByzantinePeer, lie: Status, logFrom: number, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    let lastSent = 0;
    while (!(await bannedEntry(liar))) {
      if (Date.now() > deadline) {
        const syncLog = watch.syncLog(logFrom);
        const stuck = syncLog.at(-1)?.includes('sync started') ? ' (its last sync never ended)' : '';
        assert.fail(
          `${liar.name} not banned within ${timeoutMs} ms; the victim's sync state is${stuck} ` +
            `${(await victim.status()).syncState}; its sync log since the lie:\n  ${syncLog.join('\n  ')}\n` +
            `penalties: ${JSON.stringify(penaltiesOf(liar).map((p) => [p.action, p.reason, p.score, p.verdict]))}`,
        );
      }
      // Within the status protocol's rate limit (10 per 10 s), so that only the lie is punished.
      if (!liar.isConnected(victim) || Date.now() - lastSent > 3_000) {
        if (!liar.isConnected(victim)) await liar.dial(victim).catch(() => {});
        await liar.request(victim, STATUS, lie).catch(() => {});
        lastSent = Date.now();
      }
      await sleep(250);
    }
  };
  const assertNothingAdopted = async (lie: Status) => {
    const v = await victim.status();
    assert.notEqual(v.headHash, toHex(lie.headHash));
    assert.ok(v.height < lie.headHeight);
    assert.ok(!(await mainChainHashes(victim)).has(toHex(lie.headHash)));
  };

  /**
   * A fresh identity lies in its status and answers the victim's sync requests with `serve`: the
   * victim must try to sync from it, penalise the bad answers (`reason`) until it bans the liar,
   * and adopt nothing. Every penalty is for the bad answers (`reason`, or `alsoFor`), apart from
   * incidental high-tolerance ones (timeouts on a loaded machine).
   */
  const liarOnCleanScore = async (
    name: string,
    serve: { ancestor: RawHandler; range?: RawHandler },
    reason: RegExp,
    alsoFor?: RegExp,
  ) => {
    const liar = await ByzantinePeer.start(name, network, attackDir, { gossip: false, seed: insider() });
    attackers.push(liar);
    const lie = await lieFor();
    await liar.serve('status', () => [successFrame(STATUS.encodeResponse(lie))]);
    await liar.serve('ancestor', serve.ancestor);
    if (serve.range) await liar.serve('blocks-by-range', serve.range);
    const before = await counters(victim);
    const since = penalties.length;
    const logFrom = victimLog.length;
    await liar.dial(victim);
    await lieUntilBanned(liar, lie, logFrom, 20_000);
    assert.ok(
      watch.logged('sync started', liar, logFrom),
      `the victim believed the lie and tried to sync from ${name}`,
    );
    const mine = penalties.slice(since).filter((p) => p.peer === liar.peerId);
    const described = JSON.stringify(mine.map((p) => [p.action, p.reason, p.score, p.verdict]));
    assert.ok(mine.filter((p) => reason.test(p.reason)).length >= 2, described);
    assert.ok(
      mine.every((p) => reason.test(p.reason) || alsoFor?.test(p.reason) || p.action === 'high-tolerance'),
      described,
    );
    assert.equal(mine.at(-1)!.verdict, 'ban');
    assert.equal((await counters(victim)).bans - before.bans, 1);
    await assertNothingAdopted(lie);
    await assertRefused(liar);
  };

  await step('(5a) a lying status, then no fork point at all: penalised until banned', () =>
    liarOnCleanScore('lenny', { ancestor: () => [] }, /^ancestor: empty answer/),
  );

  await step('(5b) a lying status, then junk for the promised blocks: penalised until banned', () =>
    liarOnCleanScore(
      'jack',
      { ancestor: trueForkPoint, range: junk },
      /^blocks-by-range: invalid-response/,
      // An answer cut off by the drop that followed a penalty reads as an empty one.
      /: 0 blocks for a range of/,
    ),
  );

  await step(
    '(5) a lying status: the victim tries to sync, gets nothing (then junk), adopts nothing; banned',
    async () => {
      const before = await counters(victim);
      const since = penalties.length;
      const logFrom = victimLog.length;
      const lie = await lieFor();
      attack.lie = lie;
      if (!mallory.isConnected(victim)) await mallory.dial(victim).catch(() => {});
      await mallory.request(victim, STATUS, lie).catch(() => {});
      // The victim believes it, finds the fork point with it, asks for blocks and gets none.
      const nothing = await waitPenalty(mallory, /0 blocks for a range of/, since, 15_000);
      assert.equal(nothing.action, 'mid-tolerance');
      assert.ok(watch.logged('sync started', mallory, logFrom), 'the victim tried to sync from the liar');
      await lieUntilBanned(mallory, lie, logFrom, 20_000);
      // Asked again (unless the first penalty already reached the ban), it served junk.
      if (attack.rangeAnswers >= 2) await waitPenalty(mallory, /blocks-by-range: invalid-response/, since, 0);
      const last = penaltiesOf(mallory).at(-1)!;
      assert.equal(last.verdict, 'ban');
      assert.ok(last.score <= -50);
      assert.equal(
        penaltiesOf(mallory).filter((x) => x.action === 'fatal').length,
        0,
        'banned by accumulation',
      );
      const after = await counters(victim);
      assert.equal(after.bans - before.bans, 1, 'cairn_peer_bans_total');
      const entry = (await bannedEntry(mallory))!;
      assert.ok(Number(entry.until) > Date.now() + 60_000, `banned until ${entry.until}`);
      // The victim's sync gives up on the banned liar rather than waiting for it.
      await cluster.waitFor((snap) => snap.statuses.victim?.syncState === 'idle', {
        nodes: ['victim'],
        timeoutMs: 15_000,
        description: 'the victim’s sync with the banned liar ends',
      });
      await assertNothingAdopted(lie);
      t.diagnostic(`mallory banned: ${entry.reason}; dial after the ban: ${await assertRefused(mallory)}`);
    },
    { mallorys: true },
  );

  await step('(6) a block of another chain id: banned at once', async () => {
    const trent = await ByzantinePeer.start('trent', network, attackDir, { seed: insider() });
    attackers.push(trent);
    await trent.connect(victim);
    // A valid block of the impostor network: mined, signed, on that network's genesis.
    const elsewhere = new Chain({ config: impostor, loadBlock: async () => undefined });
    const other = await forgeAsync(elsewhere, elsewhere.tip, trent.identity.signingKey);
    assert.equal(toHex(other.header.chainId), chainIdHex(impostor));
    forged.push({ what: 'wrong chain id', hash: other.hashHex });
    const before = await counters(victim);
    const since = penalties.length;
    await gossip(trent, other, 'the block of another chain');
    const p = await waitPenalty(trent, /invalid block: wrong-chain-id/, since);
    assertDrop(p, 0, 'fatal');
    assert.equal(p.verdict, 'ban');
    const after = await counters(victim);
    assertDeltas(after, before, { rejected: 1, fatal: 1, bans: 1, errors: 1 });
    assert.equal(after.error('wrong-chain-id') - before.error('wrong-chain-id'), 1);
    assert.ok(await bannedEntry(trent));
    await assertRefused(trent);
    await assertNotAdopted(other, 'the block of another chain');
  });

  await step('(7) a status of another chain, and nothing else: banned at once', async () => {
    const sybil = await ByzantinePeer.start('sybil', network, attackDir, { gossip: false, seed: insider() });
    attackers.push(sybil);
    const theirs = genesisBlock(impostor);
    const before = await counters(victim);
    const since = penalties.length;
    await sybil.dial(victim);
    await sybil
      .request(victim, STATUS, {
        ...honestStatus,
        chainId: chainIdOf(impostor),
        genesisHash: theirs.hash,
        headHash: theirs.hash,
      })
      .catch(() => {});
    const p = await waitPenalty(sybil, /status of another chain/, since);
    assertDrop(p, 0, 'fatal');
    assert.equal(p.verdict, 'ban');
    assert.equal(penaltiesOf(sybil).length, 1, 'one message, one penalty');
    const after = await counters(victim);
    assertDeltas(after, before, { fatal: 1, bans: 1, rejected: 0 });
    assert.ok(await bannedEntry(sybil));
    await assertRefused(sybil);
  });

  await step(
    'the honest nodes were unaffected',
    async () => {
      const end = await cluster.waitForConverged({ minHeight: startHeight + 5, timeoutMs: 30_000 });
      const trace = JSON.stringify(heights);
      for (let i = 1; i < heights.length; i++) {
        assert.ok(heights[i]!.miner >= heights[i - 1]!.miner, `the miner's height went down: ${trace}`);
        assert.ok(heights[i]!.victim >= heights[i - 1]!.victim, `the victim's height went down: ${trace}`);
      }
      for (const h of heights)
        assert.ok(h.victim >= h.miner - 5, `the victim fell behind the miner: ${trace}`);
      // Nothing reached the miner: no rejected gossip, no validation errors, no penalties, no foreign peers.
      const m = deltas(await counters(miner), minerBefore);
      assert.deepEqual([m.rejected, m.errors, m.low, m.mid, m.fatal, m.bans], [0, 0, 0, 0, 0, 0]);
      assert.deepEqual(
        (await miner.status()).peers.map((p) => p.peerId),
        [victim.peerId],
      );
      const attackerIds = new Set(attackers.map((a) => a.peerId));
      assert.deepEqual(
        (await victim.status()).peers.map((p) => p.peerId).filter((p) => attackerIds.has(p)),
        [],
      );
      for (const node of [miner, victim]) {
        const main = await mainChainHashes(node);
        for (const f of forged)
          assert.ok(!main.has(f.hash), `${node.name} has the ${f.what} block on its chain`);
      }
      t.diagnostic(
        `heights ${startHeight} → ${end.statuses.victim!.height}; steps ${JSON.stringify(heights)}`,
      );
      const stopped = await cluster.stopAll();
      for (const node of [miner, victim]) {
        assert.deepEqual(
          [node.name, stopped[node.name]?.code, stopped[node.name]?.forced],
          [node.name, 0, false],
        );
        const lines = (await readFile(node.logPath, 'utf8')).split('\n').filter(Boolean);
        const bad = lines.filter((l) => {
          try {
            const o = JSON.parse(l) as { level?: number };
            return (o.level ?? 0) >= 50;
          } catch {
            return true; // not a log line: a crash trace or a warning on stderr
          }
        });
        assert.deepEqual(bad, [], `${node.name} logged errors`);
      }
    },
    { record: false },
  );

  t.diagnostic(`took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  passed = !anyFailed;
});

const mainChainHashes = async (node: ClusterNode) => {
  const { height } = await node.status();
  return new Set((await node.chain(0, height)).blocks.map((b) => b.hash));
};

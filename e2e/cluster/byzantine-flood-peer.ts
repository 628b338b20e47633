/**
 * Flooding attackers for the flood cluster test, on ByzantinePeer hosts: a slow reader that
 * opens many blocks-by-range streams and never reads them, a spammer that gossips entries
 * signed by throwaway keys, and a probe that times the victim's /status throughout.
 */
import { spawn } from 'node:child_process';
import { setTimeout as sleep, setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import type { SigningKey } from '../../node/chain/signature.ts';
import type { SealedEntry } from '../../node/chain/types.ts';
import { encodeRangeRequest } from '../../node/p2p/messages.ts';
import { knowledgeEntry, testKey } from '../../node/testing/forge.ts';
import type { ByzantinePeer, Target } from './byzantine-peer.ts';
import type { ClusterNode } from './harness.ts';

/**
 * Times GET /status every `everyMs` until stopped, from a child process of its own: the
 * attackers share this process, and their work would delay the probe's own event loop and
 * show up as the victim's latency. A failure counts as its 5 s timeout. The first request is
 * not counted: it loads fetch and opens the connection in the child (100-200 ms of the probe's
 * own on a loaded host, whatever the victim does); `ready` resolves once it is answered, and an
 * attack starts after it, so the samples cover the attack from its start.
 */
export function statusProbe(node: ClusterNode, everyMs = 200) {
  const url = `${node.httpUrl}/status`;
  const script = `
    const url = ${JSON.stringify(url)};
    let running = true;
    process.stdin.on('data', () => { running = false; });
    process.stdin.on('end', () => { running = false; });
    while (running) {
      const t0 = performance.now();
      let err = '';
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
        await res.text();
        if (!res.ok) err = 'HTTP ' + res.status;
      } catch (e) { err = e.message; }
      process.stdout.write(JSON.stringify({ ms: performance.now() - t0, err, at: new Date().toISOString() }) + '\\n');
      await new Promise((r) => setTimeout(r, ${everyMs}));
    }
    process.exit(0);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const samples: number[] = [];
  const failures: string[] = [];
  const slow: string[] = [];
  let warm = false;
  let markReady = () => {};
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  let buf = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let i = buf.indexOf('\n');
    while (i >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      i = buf.indexOf('\n');
      if (!line.trim()) continue;
      const { ms, err, at } = JSON.parse(line) as { ms: number; err: string; at: string };
      if (!warm) {
        warm = true;
        markReady();
        continue;
      }
      samples.push(ms);
      if (err) failures.push(`${at}: ${err}`);
      if (ms > 1000) slow.push(`${at} ${ms.toFixed(0)} ms`);
    }
  });
  const exited = new Promise<void>((resolve) =>
    child.on('exit', () => {
      markReady();
      resolve();
    }),
  );
  const pct = (q: number) => {
    const sorted = [...samples].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  };
  return {
    samples,
    failures,
    slow,
    /** Resolves once the warm-up request is answered (or the probe ended). */
    ready,
    max: () => Math.max(0, ...samples),
    /** The q-quantile of the latencies, in ms. */
    quantile: pct,
    /** p50 / p99 / max in ms, for the diagnostics. */
    summary: () =>
      `p50 ${pct(0.5).toFixed(0)} p99 ${pct(0.99).toFixed(0)} max ${Math.max(0, ...samples).toFixed(0)} ms over ${samples.length}`,
    async stop() {
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 7_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** The victim's resident memory, from its Prometheus process metrics. */
export async function rssBytes(node: ClusterNode): Promise<number> {
  const v = await node.metric('process_resident_memory_bytes');
  if (v === undefined) throw new Error(`${node.name} reports no process_resident_memory_bytes`);
  return v;
}

/**
 * Opens `streams` blocks-by-range requests for full ranges (128 blocks) and pauses each, so
 * its muxer grants the victim no receive window: what the victim writes stays in its own
 * buffers. Returns the streams that opened (the caller aborts them).
 */
export async function slowRead(
  peer: ByzantinePeer,
  target: Target,
  streams: number,
  maxHeight: number,
): Promise<Stream[]> {
  const opened = await Promise.allSettled(
    Array.from({ length: streams }, async (_, i) => {
      const stream = await peer.host.dialProtocol(
        peerIdFromString(target.peerId),
        peer.protocolId('blocks-by-range'),
        { signal: AbortSignal.timeout(3_000) },
      );
      stream.pause();
      const req = encodeRangeRequest({
        startHeight: 1 + ((i * 128) % Math.max(1, maxHeight - 128)),
        count: 128,
      });
      stream.send(Uint8Array.from([req.length, ...req]));
      return stream;
    }),
  );
  return opened.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
}

/**
 * `n` valid entries, each signed by a key of its own, built with the event loop running. With
 * `own`, every other one is signed by that key instead: an insider's own entries (it holds
 * `submit`) mixed with ones of keys no roster lists.
 */
export async function throwawayEntries(
  n: number,
  first = 1_000_000,
  own?: SigningKey,
): Promise<SealedEntry[]> {
  const out: SealedEntry[] = [];
  for (let i = 0; i < n; i++) {
    const key = own && i % 2 === 1 ? own : testKey(first + i);
    out.push(knowledgeEntry(key, Date.now() - 1_000, `spam ${i}`));
    if (i % 500 === 0) await yieldToLoop();
  }
  return out;
}

/**
 * Gossips entries on the entries topic at `perSecond` (20x the victim's admission rate by
 * default), until all are sent or the victim stops listening for good. Dropped without a ban
 * (the victim disconnects at a score of -20 and bans at -50) it dials again and goes on, as a
 * flooder would; banned, its dials are refused and it stops. Returns how many went out. Paced rather than all queued at once: 20,000 messages already in
 * the victim's socket buffers cost it ~0.3 ms each in libp2p alone (noise, yamux, gossipsub
 * decoding) whatever it decides about them, which is a libp2p limit rather than a mempool one.
 */
export async function spamEntries(
  peer: ByzantinePeer,
  target: Target,
  entries: readonly SealedEntry[],
  perSecond = 2_000,
): Promise<number> {
  let sent = 0;
  const t0 = performance.now();
  for (const e of entries) {
    const delivered = await peer.host.services.pubsub.publish(peer.topics.entries, e.encoded).then(
      ({ recipients }) => recipients.length > 0,
      () => false,
    );
    if (!delivered) {
      const back = await peer.connect(target, 3_000).then(
        () => true,
        () => false,
      );
      if (!back) break;
      continue;
    }
    sent++;
    if (sent % 50 === 0) {
      const ahead = (sent / perSecond) * 1000 - (performance.now() - t0);
      if (ahead > 0) await sleep(ahead);
      else await yieldToLoop();
    }
  }
  return sent;
}

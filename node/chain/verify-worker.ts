import { parentPort } from 'node:worker_threads';
import sodium from 'sodium-native';

/** Verifies packed (public key 32, message 32, signature 64) items; answers one byte per item. */
parentPort!.on('message', (msg: { id: number; items: ArrayBuffer }) => {
  const buf = Buffer.from(msg.items);
  const n = buf.length / 128;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * 128;
    out[i] = sodium.crypto_sign_verify_detached(
      buf.subarray(o + 64, o + 128),
      buf.subarray(o + 32, o + 64),
      buf.subarray(o, o + 32),
    )
      ? 1
      : 0;
  }
  parentPort!.postMessage({ id: msg.id, results: out }, [out.buffer]);
});

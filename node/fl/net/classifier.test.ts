import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { toHex } from '../../chain/bytes.ts';
import type { ModelPayload } from '../../chain/types.ts';
import { classifyText } from '../classify.ts';
import { type Params, zeroParams } from '../logistic.ts';
import { Classifier, NoModelError } from './classifier.ts';

const version = (round: number, fill: number, bias: number) => {
  const params = zeroParams(16);
  params[16] = bias;
  const payload: ModelPayload = {
    kind: 'model',
    modelHash: new Uint8Array(32).fill(fill),
    parentHash: null,
    round,
    metrics: [],
    epsilon: 0,
  };
  return { payload, params };
};

describe('Classifier', () => {
  test('loads each head version once and follows the head', async () => {
    const v1 = version(1, 1, 2);
    const v2 = version(2, 2, -2);
    let head: ModelPayload | undefined;
    const loaded: string[] = [];
    const byHash = new Map([v1, v2].map((v) => [toHex(v.payload.modelHash), v.params]));
    const c = new Classifier({
      head: () => head,
      load: async (hash) => {
        loaded.push(toHex(hash));
        return byHash.get(toHex(hash))!;
      },
    });
    await assert.rejects(c.classify('hi'), NoModelError);
    head = v1.payload;
    const a = await c.classify('hello');
    const b = await c.classify('other words');
    assert.deepEqual(a, {
      version: toHex(v1.payload.modelHash),
      round: 1,
      ...classifyText(v1.params, 'hello'),
    });
    assert.equal(a.spam, true);
    assert.equal(b.version, a.version);
    head = v2.payload;
    const d = await c.classify('hello');
    assert.equal(d.round, 2);
    assert.equal(d.spam, false);
    assert.deepEqual(loaded, [toHex(v1.payload.modelHash), toHex(v2.payload.modelHash)]);
    assert.equal(c.loads, 2);
  });

  test('a failed load is retried by the next request', async () => {
    const v1 = version(1, 7, 1);
    let fail = true;
    const c = new Classifier({
      head: () => v1.payload,
      load: async (): Promise<Params> => {
        if (fail) throw new Error('no peer served it');
        return v1.params;
      },
    });
    await assert.rejects(c.classify('x'), /no peer/);
    fail = false;
    assert.equal((await c.classify('x')).round, 1);
  });
});

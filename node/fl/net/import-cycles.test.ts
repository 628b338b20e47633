/**
 * Issue 16 item 4: federated learning sees the node through FlServiceDeps only. No module of
 * node/fl imports node.ts, and no import cycle (type-only imports included, as madge counts
 * them) runs through node/fl: node.ts → fl/net/service.ts → fl/net/rounds.ts → service.ts and
 * fl/net/data.ts ↔ options.ts were two.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';

const NODE_DIR = path.resolve(import.meta.dirname, '../..');
const FL_DIR = path.join(NODE_DIR, 'fl');

/** Every non-test .ts file under node/, with its relative imports resolved to absolute paths. */
function importGraph(): Map<string, string[]> {
  const files = readdirSync(NODE_DIR, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && d.name.endsWith('.ts') && !d.name.endsWith('.test.ts'))
    .map((d) => path.join(d.parentPath, d.name))
    .filter((f) => !f.includes(`${path.sep}generated${path.sep}`));
  const known = new Set(files);
  return new Map(
    files.map((f) => [
      f,
      ts
        .preProcessFile(readFileSync(f, 'utf8'), true, true)
        .importedFiles.map((i) => i.fileName)
        .filter((n) => n.startsWith('.'))
        .map((n) => path.resolve(path.dirname(f), n))
        .filter((n) => known.has(n)),
    ]),
  );
}

/** Strongly connected components of more than one module (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1) out.push(scc);
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

test('no import cycle runs through node/fl, and node/fl does not import node.ts', () => {
  const graph = importGraph();
  assert.ok(graph.size > 50, `read ${graph.size} modules`);
  const rel = (f: string) => path.relative(NODE_DIR, f);
  const throughFl = cycles(graph)
    .filter((c) => c.some((f) => f.startsWith(FL_DIR)))
    .map((c) => c.map(rel).sort());
  assert.deepEqual(throughFl, []);
  const nodeTs = path.join(NODE_DIR, 'node.ts');
  const importers = [...graph].filter(([f, deps]) => f.startsWith(FL_DIR) && deps.includes(nodeTs));
  assert.deepEqual(
    importers.map(([f]) => rel(f)),
    [],
  );
});

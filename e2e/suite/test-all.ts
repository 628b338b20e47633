/**
 * `npm run test:all`: every node:test file of the repository in two phases reported as one run,
 * one summary last.
 *
 *  - unit: every test outside e2e/cluster, two files at a time. Most of them wait on a database,
 *    a Redis or a child process, so two run side by side in little more than the time of one.
 *  - cluster: e2e/cluster, one file at a time. Each starts real node processes with block times
 *    and deadlines; two clusters on two shared cores would make each other's timing flaky.
 *
 * The reporter sees the events of both phases in order and the counts of both in one summary
 * (the runner's own per-phase summaries are swallowed), so the last lines printed are the totals.
 * `--phase unit|cluster` runs one phase; further arguments narrow the files to those whose path
 * contains one of them.
 */

import { globSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');

interface Phase {
  readonly name: 'unit' | 'cluster';
  readonly files: readonly string[];
  readonly concurrency: number;
}

interface Counts {
  tests: number;
  suites: number;
  passed: number;
  failed: number;
  cancelled: number;
  skipped: number;
  todo: number;
}

const ZERO: Counts = { tests: 0, suites: 0, passed: 0, failed: 0, cancelled: 0, skipped: 0, todo: 0 };

/** Events the runner emits once per run(), for the whole run: replaced by one combined set. */
const isRunSummary = (e: { type: string; data: { nesting?: number; file?: string } }) =>
  e.data.file === undefined &&
  (e.type === 'test:summary' ||
    ((e.type === 'test:plan' || e.type === 'test:diagnostic') && e.data.nesting === 0));

function phases(argv: readonly string[]): Phase[] {
  const only = argv.includes('--phase') ? argv[argv.indexOf('--phase') + 1] : undefined;
  const filters = argv.filter((a, i) => !a.startsWith('--') && argv[i - 1] !== '--phase');
  const pick = (patterns: readonly string[]) =>
    patterns
      .flatMap((p) => globSync(p, { cwd: REPO_ROOT }))
      .filter((f) => !f.includes('node_modules'))
      .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
      .sort()
      .map((f) => path.join(REPO_ROOT, f));
  const cluster = pick(['e2e/cluster/*.test.ts']);
  const unit = pick(['{node,jobs,schema,gateway}/**/*.test.ts', 'e2e/**/*.test.ts']).filter(
    (f) => !cluster.includes(f),
  );
  const all: Phase[] = [
    { name: 'unit', files: unit, concurrency: 2 },
    { name: 'cluster', files: cluster, concurrency: 1 },
  ];
  return all.filter((p) => p.files.length > 0 && (only === undefined || p.name === only));
}

async function* events(plan: readonly Phase[], totals: Counts): AsyncGenerator<unknown> {
  const started = performance.now();
  for (const phase of plan) {
    const stream = run({
      files: [...phase.files],
      concurrency: phase.concurrency,
      cwd: REPO_ROOT,
      // Node's own type stripping, as the programs the tests spawn run: no tsx loader
      // transpiling every import in each of some 180 test processes.
      execArgv: [],
    });
    for await (const e of stream as AsyncIterable<{ type: string; data: Record<string, unknown> }>) {
      if (!isRunSummary(e as never)) {
        yield e;
        continue;
      }
      if (e.type === 'test:summary') {
        const c = e.data.counts as Counts;
        for (const k of Object.keys(totals) as (keyof Counts)[]) totals[k] += c[k] ?? 0;
      }
    }
  }
  const line = (message: string) => ({
    type: 'test:diagnostic',
    data: { nesting: 0, message, level: 'info' },
  });
  yield line(`tests ${totals.tests}`);
  yield line(`suites ${totals.suites}`);
  yield line(`pass ${totals.passed}`);
  yield line(`fail ${totals.failed}`);
  yield line(`cancelled ${totals.cancelled}`);
  yield line(`skipped ${totals.skipped}`);
  yield line(`todo ${totals.todo}`);
  yield line(`duration_ms ${performance.now() - started}`);
}

const plan = phases(process.argv.slice(2));
if (plan.length === 0) {
  process.stderr.write('test-all: no test file matches\n');
  process.exit(1);
}
const totals: Counts = { ...ZERO };
const out = Readable.from(events(plan, totals)).compose(new spec());
for await (const chunk of out) process.stdout.write(chunk as string);
process.exitCode = totals.failed > 0 || totals.cancelled > 0 || totals.tests === 0 ? 1 : 0;

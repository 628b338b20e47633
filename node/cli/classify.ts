/**
 * `npm run node -- classify "<text>" --data-dir DIR [--json]`
 *
 * Asks the node running on DIR for its model's verdict, through its local API (POST /classify
 * with the data dir's cookie), so the CLI answers exactly what the API answers: same version,
 * same score. Without a running node there is no chain head to say which version is current.
 */
import type { Classification } from '../fl/net/classifier.ts';
import { NODE_DEFAULTS } from '../options.ts';
import { connectToRunningNode, type LocalClientArgs, parseLocalClientArgs } from './local-client.ts';

export const CLASSIFY_HELP = `cairn node classify — spam or not, by the network's newest model

usage: npm run node -- classify "<text>" [options]      (text "-" reads standard input)

  --data-dir DIR  the data dir of the running node to ask (default ${NODE_DEFAULTS.dataDir})
  --json          print the answer as JSON: {"version","round","spam","score"}
  --help          this text

Exit status: 0 answered, 1 no running node or the node refused (409: no model yet), 2 usage.`;

/** POSTs the text to the node's API; throws with the API's error message when it refuses. */
export async function classifyViaApi(httpUrl: string, token: string, text: string): Promise<Classification> {
  const res = await fetch(`${httpUrl}/classify`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ text }),
    signal: AbortSignal.timeout(30_000),
  });
  const body = (await res.json()) as Classification & { error?: string; code?: string };
  if (!res.ok) throw new Error(`${res.status} ${body.code ?? ''}: ${body.error ?? 'refused'}`);
  return body;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function runClassify(argv: readonly string[], out = process.stdout): Promise<number> {
  const fail = (message: string, code = 2) => {
    process.stderr.write(`cairn node classify: ${message}\n`);
    return code;
  };
  let values: LocalClientArgs;
  try {
    values = parseLocalClientArgs(argv);
  } catch (err) {
    return fail((err as Error).message);
  }
  const { positionals } = values;
  if (values.help) {
    out.write(`${CLASSIFY_HELP}\n`);
    return 0;
  }
  if (positionals.length !== 1) return fail('give the text as one argument (quote it), or - for stdin');
  const text = positionals[0] === '-' ? await readStdin() : positionals[0]!;
  const running = await connectToRunningNode(values.dataDir);
  if ('error' in running) return fail(running.error, 1);
  const { token } = running;
  let answer: Classification;
  try {
    answer = await classifyViaApi(running.httpUrl, token, text);
  } catch (err) {
    return fail((err as Error).message, 1);
  }
  out.write(
    values.json
      ? `${JSON.stringify(answer)}\n`
      : `${answer.spam ? 'spam' : 'not spam'} (score ${answer.score.toFixed(4)}, model round ${answer.round}, version ${answer.version.slice(0, 16)}…)\n`,
  );
  return 0;
}

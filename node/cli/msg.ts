/**
 * `npm run node -- msg send <name|peer> "<text>"`, `msg inbox`, `msg outbox` (all with
 * `--data-dir DIR [--json]`): direct messages through the running node's local API, with the
 * data dir's cookie, so the CLI shows exactly what the API holds.
 */
import { NODE_DEFAULTS } from '../options.ts';
import { connectToRunningNode, type LocalClientArgs, parseLocalClientArgs } from './local-client.ts';

export const MSG_HELP = `cairn node msg — direct messages between members

usage: npm run node -- msg send <name|peer id|key> "<text>" [options]
       npm run node -- msg inbox [options]
       npm run node -- msg outbox [options]

  --data-dir DIR  the data dir of the running node (default ${NODE_DEFAULTS.dataDir})
  --json          print the API's answer as JSON
  --help          this text

Exit status: 0 done, 1 no running node or the node refused, 2 usage.`;

interface Sent {
  id: string;
  toName: string | null;
  to: string;
  seq: number;
  status: string;
  error: string | null;
}
interface Received {
  /** The newest model's verdict (GET /messages), null before the first version. */
  spam?: { spam: boolean; score: number } | null;
  fromName: string | null;
  from: string;
  seq: number;
  text: string;
  receivedAtMs: number;
}

export async function runMsg(argv: readonly string[], out = process.stdout): Promise<number> {
  const fail = (message: string, code = 2) => {
    process.stderr.write(`cairn node msg: ${message}\n`);
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
    out.write(`${MSG_HELP}\n`);
    return 0;
  }
  const [command, ...rest] = positionals;
  if (
    command === 'send' ? rest.length !== 2 : command === 'inbox' || command === 'outbox' ? rest.length : true
  )
    return fail(`usage: msg send <to> "<text>" | msg inbox | msg outbox (see --help)`);
  const running = await connectToRunningNode(values.dataDir);
  if ('error' in running) return fail(running.error, 1);
  const { token } = running;
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  const call = async <T>(method: 'GET' | 'POST', p: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${running.httpUrl}${p}`, {
      method,
      headers,
      signal: AbortSignal.timeout(30_000),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const answer = (await res.json()) as T & { error?: string; code?: string };
    if (!res.ok) throw new Error(`${res.status} ${answer.code ?? ''}: ${answer.error ?? 'refused'}`);
    return answer;
  };
  const who = (name: string | null, key: string) => name ?? `${key.slice(0, 16)}…`;
  try {
    if (command === 'send') {
      const r = await call<Sent>('POST', '/messages', { to: rest[0], text: rest[1] });
      out.write(
        values.json
          ? `${JSON.stringify(r)}\n`
          : `#${r.seq} to ${who(r.toName, r.to)}: ${r.status}${r.error ? ` (${r.error})` : ''}\n`,
      );
    } else if (command === 'inbox') {
      const { messages } = await call<{ messages: Received[] }>('GET', '/messages?limit=1000');
      if (values.json) out.write(`${JSON.stringify(messages)}\n`);
      else
        for (const m of messages)
          out.write(
            `${new Date(m.receivedAtMs).toISOString()} ${who(m.fromName, m.from)} #${m.seq}${m.spam?.spam ? ` [spam ${m.spam.score.toFixed(2)}]` : ''}: ${m.text}\n`,
          );
    } else {
      const { messages } = await call<{ messages: Sent[] }>('GET', '/messages/outbox?limit=1000');
      if (values.json) out.write(`${JSON.stringify(messages)}\n`);
      else
        for (const m of messages)
          out.write(`#${m.seq} to ${who(m.toName, m.to)}: ${m.status}${m.error ? ` (${m.error})` : ''}\n`);
    }
  } catch (err) {
    return fail((err as Error).message, 1);
  }
  return 0;
}

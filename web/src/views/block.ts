import { emptyState, errorBox, fmtDateTime, h, mount, table } from '../dom.ts';
import { BLOCK, type BlockDetail, type Entry } from '../queries.ts';
import { verifyBlockSignature } from '../verify.ts';
import { loadAndReload, type View } from './view.ts';

function row(label: string, value: Node | string, testid?: string): HTMLElement {
  return h('tr', null, h('th', null, label), h('td', { 'data-testid': testid }, value));
}

function entryRows(entries: readonly Entry[]): HTMLElement {
  if (!entries.length) return emptyState('This block carries no entries.', 'entries-empty');
  return table(
    { class: 'entries', 'data-testid': 'entries' },
    ['#', 'Kind', 'Content / payload', 'Author', 'Time', 'Id'],
    entries.map((e) =>
      h(
        'tr',
        { 'data-testid': 'entry-row' },
        h('td', null, String(e.position)),
        h('td', null, e.kind),
        h('td', { class: 'payload' }, e.content ?? e.payload),
        h('td', { class: 'mono', title: e.author }, `${e.author.slice(0, 10)}…`),
        h('td', null, fmtDateTime(e.timestamp)),
        h('td', { class: 'mono', title: e.id }, `${e.id.slice(0, 10)}…`),
      ),
    ),
  );
}

/** #/block/<hash> or #/block/height/<n>: header fields, entries and the signature check. */
export const blockView: View = (root, { gw, params }) => {
  const byHeight = params[0] === 'height';
  const variables = byHeight ? { height: Number(params[1]) } : { hash: params[0] ?? '' };
  const load = async () => {
    let block: BlockDetail | null;
    try {
      block = (await gw.query<{ block: BlockDetail | null }>(BLOCK, variables)).block;
    } catch (e) {
      mount(root, h('h1', null, 'Block'), errorBox(e));
      return;
    }
    if (!block) {
      mount(
        root,
        h('h1', null, 'Block'),
        emptyState(
          `No block ${byHeight ? `at height ${params[1]}` : params[0]} in the index.`,
          'block-missing',
        ),
      );
      return;
    }
    const check = verifyBlockSignature(block);
    const verdict = h(
      'span',
      {
        class: check.valid ? 'badge ok' : 'badge bad',
        'data-testid': 'signature-status',
        'data-valid': String(check.valid),
        title: check.reason,
      },
      !check.valid ? 'invalid' : check.genesis ? 'genesis (unsigned)' : 'valid',
    );
    mount(
      root,
      h('h1', null, `Block ${block.height}`),
      h(
        'p',
        { class: 'sigline' },
        'Miner signature: ',
        verdict,
        h(
          'span',
          { class: 'muted', 'data-testid': 'signature-reason' },
          ` — ${check.reason} (checked in this browser)`,
        ),
      ),
      h(
        'table',
        { class: 'kv', 'data-testid': 'block-fields' },
        h(
          'tbody',
          null,
          row('Hash', h('span', { class: 'mono', 'data-testid': 'block-hash' }, block.hash)),
          row('Height', String(block.height)),
          row(
            'Previous',
            block.parent
              ? h('a', { href: `#/block/${block.parent.hash}`, class: 'mono' }, block.prevHash)
              : h('span', { class: 'mono' }, block.prevHash),
          ),
          row('Time', fmtDateTime(block.timestamp)),
          row('Canonical', block.canonical ? 'yes' : 'no (reorged out)'),
          row('Merkle root', h('span', { class: 'mono' }, block.merkleRoot)),
          row('Target', h('span', { class: 'mono' }, block.target)),
          row('Nonce', block.nonce),
          row('Total work', block.totalWork),
          row('Miner', h('span', { class: 'mono' }, block.miner)),
          row('Signature', h('span', { class: 'mono wrap' }, block.signature)),
          row('Hash = sha256(header)', check.hashMatches ? 'yes' : 'NO', 'hash-check'),
          row('Size', `${block.sizeBytes} bytes, ${block.entryCount} entries`),
          row('Reported by', h('span', { class: 'mono' }, block.reportedBy)),
          row('Indexed at', fmtDateTime(block.receivedAt)),
        ),
      ),
      h('h2', null, 'Entries'),
      entryRows(block.entries),
    );
  };
  mount(root, h('h1', null, 'Block'), h('p', { class: 'muted' }, 'loading…'));
  return loadAndReload(gw, load);
};

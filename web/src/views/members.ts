import { renderSVG } from 'uqr';
import { emptyState, errorBox, fmtDateTime, h, mount, shortHex, table } from '../dom.ts';
import { GqlError } from '../gateway.ts';
import { INVITE_DEVICE, MEMBERS, type MemberInfo, REVOKE_DEVICE } from '../queries.ts';
import { nodeSelect } from './node-select.ts';
import { loadAndReload, type View } from './view.ts';

const ROLES = ['submind', 'hub', 'backup', 'observer'] as const;
const CAPABILITIES = ['mine', 'train', 'coordinate', 'submit', 'relay', 'archive', 'message'] as const;

/**
 * Who belongs to the network, as an admin's node sees its roster: invite a device (the
 * invitation string and its QR code, for `npm run node -- join` on the device) and revoke one.
 * Every action needs an admin token (set on the Admin page); refusals are shown as they came.
 */
export const membersView: View = (root, { gw, params }) => {
  let members: MemberInfo[] = [];
  let error: unknown;
  const picker = nodeSelect(gw, {
    testId: 'members-node',
    initial: params[0],
    onChange: () => void loadMembers(),
  });
  const name = h('input', { placeholder: "device name, e.g. Kim's tablet", 'data-testid': 'invite-name' });
  const role = h(
    'select',
    { 'data-testid': 'invite-role' },
    ROLES.map((r) => h('option', { value: r }, r)),
  );
  const caps = CAPABILITIES.map((c) =>
    h('input', { type: 'checkbox', value: c, 'data-testid': `invite-cap-${c}` }),
  );
  const days = h('input', { type: 'number', min: 1, max: 3650, value: 30, 'data-testid': 'invite-days' });
  const invitation = h('div', { class: 'invitation', 'data-testid': 'invitation' });
  const list = h('div');

  const refusal = (label: string, err: unknown) => {
    const e = err instanceof GqlError ? err : new GqlError(String(err), undefined, undefined);
    return h(
      'pre',
      { class: 'result bad', 'data-testid': 'members-error', 'data-code': e.code ?? '' },
      `${label}: refused${e.code ? ` (${e.code})` : ''}\n${e.message}`,
    );
  };

  const invite = async () => {
    if (!picker.selected) return mount(invitation, h('p', { class: 'bad' }, 'Pick an admin node first.'));
    mount(invitation, h('p', { class: 'muted' }, 'Inviting…'));
    try {
      const d = await gw.query<{
        inviteDevice: { invitation: string; expiresAt: string; memberUntil: string };
      }>(INVITE_DEVICE, {
        nodeId: picker.selected,
        name: name.value,
        role: role.value,
        capabilities: caps.filter((c) => c.checked).map((c) => c.value),
        days: Number(days.value),
      });
      const inv = d.inviteDevice;
      const qr = h('div', { class: 'qr', 'data-testid': 'invitation-qr' });
      qr.innerHTML = renderSVG(inv.invitation);
      mount(
        invitation,
        qr,
        h(
          'p',
          null,
          'On the new device: ',
          h('code', null, 'npm run node -- join <invitation> --data-dir <dir>'),
        ),
        h('textarea', { readonly: true, rows: 3, 'data-testid': 'invitation-text' }, inv.invitation),
        h(
          'p',
          { class: 'muted' },
          `Single use, until ${fmtDateTime(inv.expiresAt)}; membership until ${fmtDateTime(inv.memberUntil)}.`,
        ),
      );
    } catch (err) {
      mount(invitation, refusal('Invite', err));
    }
  };

  const revoke = async (m: MemberInfo) => {
    if (
      !confirm(
        `Revoke ${m.name} (${shortHex(m.publicKey, 8)})? Every node disconnects it once the revocation is mined.`,
      )
    )
      return;
    try {
      await gw.query(REVOKE_DEVICE, { nodeId: picker.selected, publicKey: m.publicKey });
      await loadMembers();
    } catch (err) {
      mount(list, refusal('Revoke', err));
    }
  };

  const renderMembers = () =>
    mount(
      list,
      error ? (error instanceof GqlError ? refusal('Members', error) : errorBox(error)) : null,
      members.length
        ? table(
            { 'data-testid': 'members-table' },
            ['Name', 'Key', 'Role', 'Capabilities', 'Until', 'State', ''],
            members.map((m) =>
              h(
                'tr',
                { 'data-testid': 'member-row', 'data-key': m.publicKey },
                h('td', null, m.name || '—'),
                h('td', { class: 'mono', title: m.publicKey }, shortHex(m.publicKey, 8)),
                h('td', null, m.admin ? `${m.role} (admin)` : m.role),
                h('td', null, m.capabilities.join(', ')),
                h('td', null, fmtDateTime(m.expiresAt)),
                h('td', { 'data-testid': 'member-state' }, m.state),
                h(
                  'td',
                  null,
                  m.state === 'revoked' || m.admin
                    ? null
                    : h(
                        'button',
                        { type: 'button', 'data-testid': 'member-revoke', onclick: () => void revoke(m) },
                        'Revoke',
                      ),
                ),
              ),
            ),
          )
        : error
          ? null
          : emptyState(
              picker.selected ? 'No members reported by this node.' : 'Pick a node to see its roster.',
            ),
    );

  const loadMembers = async () => {
    if (!picker.selected) return renderMembers();
    try {
      members = (await gw.query<{ members: MemberInfo[] }>(MEMBERS, { nodeId: picker.selected })).members;
      error = undefined;
    } catch (err) {
      members = [];
      error = err;
    }
    renderMembers();
  };

  mount(
    root,
    h('h1', null, 'Members'),
    h('p', null, h('label', null, 'Admin node ', picker.element)),
    h(
      'form',
      {
        class: 'invite',
        onsubmit: (ev: Event) => {
          ev.preventDefault();
          void invite();
        },
      },
      h('h2', null, 'Invite a device'),
      h('label', null, 'Name ', name),
      h('label', null, ' Role ', role),
      h('label', null, ' Days ', days),
      h(
        'p',
        null,
        'Capabilities: ',
        caps.map((c) => h('label', null, c, ` ${c.value} `)),
      ),
      h('button', { type: 'submit', 'data-testid': 'invite-submit' }, 'Create invitation'),
    ),
    invitation,
    h('h2', null, 'Roster'),
    list,
  );
  renderMembers();

  const load = async () => {
    await picker.load();
    await loadMembers();
  };
  return loadAndReload(gw, load);
};

import { h, mount, shortHex } from '../dom.ts';
import { GqlError } from '../gateway.ts';
import { ADMIN_ACTIONS, type AdminAction, SEND_MESSAGE, SUBMIT_ENTRY } from '../queries.ts';
import { setToken } from '../token.ts';
import { nodeSelect } from './node-select.ts';
import { loadAndReload, type View } from './view.ts';

/**
 * Admin actions on one node. The token is kept in sessionStorage and sent as a bearer token;
 * without one (or with a viewer's) the gateway refuses and the refusal is shown as it came.
 */
export const adminView: View = (root, { gw, params }) => {
  const picker = nodeSelect(gw, { testId: 'admin-node', initial: params[0] });
  const tokenInput = h('input', {
    type: 'password',
    placeholder: 'admin or operator token',
    autocomplete: 'off',
    'data-testid': 'token-input',
    value: gw.token(),
  });
  const tokenState = h('span', { class: 'muted', 'data-testid': 'token-state' });
  const showTokenState = () => {
    tokenState.textContent = gw.token() ? 'token set for this tab' : 'no token: actions will be refused';
  };
  const result = h('pre', { class: 'result', 'data-testid': 'admin-result' });
  const content = h('textarea', {
    rows: 2,
    placeholder: 'knowledge entry content',
    'data-testid': 'entry-content',
  });

  const messageTo = h('input', {
    placeholder: 'to: member name or peer id',
    autocomplete: 'off',
    'data-testid': 'message-to',
  });
  const messageText = h('textarea', { rows: 2, placeholder: 'message text', 'data-testid': 'message-text' });

  const show = (ok: boolean, text: string, code?: string) => {
    result.dataset.ok = String(ok);
    if (code) result.dataset.code = code;
    else delete result.dataset.code;
    result.className = `result ${ok ? 'ok' : 'bad'}`;
    result.textContent = text;
  };

  const run = async (label: string, doc: string, variables: Record<string, unknown>) => {
    if (!picker.selected) return show(false, 'Pick a node first.');
    show(true, `${label} on ${shortHex(picker.selected, 6)}…`);
    result.dataset.pending = 'true';
    try {
      const data = await gw.query<Record<string, unknown>>(doc, variables);
      show(true, `${label}: ok\n${JSON.stringify(Object.values(data)[0], null, 2)}`);
    } catch (err) {
      const e = err instanceof GqlError ? err : new GqlError(String(err), undefined, undefined);
      show(false, `${label}: refused${e.code ? ` (${e.code})` : ''}\n${e.message}`, e.code);
    } finally {
      delete result.dataset.pending;
    }
  };

  mount(
    root,
    h('h1', null, 'Admin'),
    h(
      'form',
      {
        class: 'token',
        onsubmit: (ev: Event) => {
          ev.preventDefault();
          setToken(tokenInput.value, new URL(gw.endpoints.http).origin);
          gw.tokenChanged();
          showTokenState();
        },
      },
      h('label', null, 'Token ', tokenInput),
      h('button', { type: 'submit', 'data-testid': 'token-save' }, 'Use token'),
      h(
        'button',
        {
          type: 'button',
          'data-testid': 'token-clear',
          onclick: () => {
            tokenInput.value = '';
            setToken('', new URL(gw.endpoints.http).origin);
            gw.tokenChanged();
            showTokenState();
          },
        },
        'Forget',
      ),
      tokenState,
    ),
    h('p', null, h('label', null, 'Node ', picker.element)),
    h(
      'p',
      { class: 'actions' },
      (Object.keys(ADMIN_ACTIONS) as AdminAction[]).map((a) =>
        h(
          'button',
          {
            type: 'button',
            'data-testid': `action-${a}`,
            onclick: () =>
              void run(ADMIN_ACTIONS[a].label, ADMIN_ACTIONS[a].doc, { nodeId: picker.selected }),
          },
          ADMIN_ACTIONS[a].label,
        ),
      ),
    ),
    h(
      'p',
      { class: 'actions' },
      content,
      h(
        'button',
        {
          type: 'button',
          'data-testid': 'action-submitEntry',
          onclick: () =>
            void run('Submit entry', SUBMIT_ENTRY, { nodeId: picker.selected, content: content.value }),
        },
        'Submit entry',
      ),
    ),
    h(
      'p',
      { class: 'actions' },
      messageTo,
      messageText,
      h(
        'button',
        {
          type: 'button',
          'data-testid': 'action-sendMessage',
          title: 'Only a node started with --allow-operator-messages sends for an operator; others refuse.',
          onclick: () =>
            void run('Send message', SEND_MESSAGE, {
              nodeId: picker.selected,
              to: messageTo.value,
              text: messageText.value,
            }),
        },
        'Send message as this node',
      ),
    ),
    result,
  );
  showTokenState();
  const offLoad = loadAndReload(gw, picker.load);
  const offSub = picker.follow();
  return () => {
    offLoad();
    offSub();
  };
};

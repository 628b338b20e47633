import { lineChart } from '../chart.ts';
import { emptyState, errorBox, fmtDateTime, fmtNum, h, mount, shortHex, table } from '../dom.ts';
import { type Connection, type FlRound, MODELS, type ModelVersion, SUB_MODEL } from '../queries.ts';
import { classifyBox } from './classify-box.ts';
import { privacyBox } from './privacy-box.ts';
import { attempt, loadAndReload, type View } from './view.ts';

/** Model versions with accuracy over rounds, and the federated-learning rounds behind them. */
export const modelsView: View = (root, { gw }) => {
  let models: ModelVersion[] = [];
  let rounds: FlRound[] = [];
  let error: unknown;
  const body = h('div');
  // The classify box sits outside `body`, so a re-render keeps what the user typed.
  const privacy = privacyBox(gw);
  mount(root, h('h1', null, 'Model versions'), classifyBox(gw), body, privacy.el);

  const render = () => {
    const withAcc = models.filter((m) => m.accuracy !== null);
    mount(
      body,
      error ? errorBox(error) : null,
      models.length
        ? [
            h('h2', null, 'Accuracy over rounds'),
            withAcc.length
              ? h(
                  'div',
                  { class: 'charts one' },
                  h(
                    'section',
                    null,
                    lineChart(
                      withAcc.map((m) => ({ t: m.round, v: m.accuracy ?? 0 })),
                      { testid: 'chart-accuracy', xLabel: (round) => `round ${round}` },
                    ),
                  ),
                )
              : emptyState('No version reports an accuracy yet.'),
            table(
              { 'data-testid': 'model-table' },
              ['Round', 'Hash', 'Parent', 'Accuracy', 'ε spent', 'Participants', 'Block', 'Created'],
              models.map((m) =>
                h(
                  'tr',
                  { 'data-testid': 'model-row' },
                  h('td', null, String(m.round)),
                  h('td', { class: 'mono', title: m.hash }, shortHex(m.hash)),
                  h('td', { class: 'mono' }, shortHex(m.parentHash)),
                  h('td', null, fmtNum(m.accuracy, 3)),
                  h('td', null, fmtNum(m.epsilon, 3)),
                  h('td', null, String(m.participants)),
                  h(
                    'td',
                    { class: 'mono' },
                    m.blockHash
                      ? h('a', { href: `#/block/${m.blockHash}` }, shortHex(m.blockHash))
                      : 'not yet mined',
                  ),
                  h('td', null, fmtDateTime(m.createdAt)),
                ),
              ),
            ),
          ]
        : emptyState(
            'No model versions yet. Federated-learning rounds commit a new version here when nodes with the "train" capability complete one; none has been reported to this index.',
            'models-empty',
          ),
      h('h2', null, 'Federated-learning rounds'),
      rounds.length
        ? table(
            { 'data-testid': 'round-table' },
            ['Round', 'Status', 'Coordinator', 'Participants', 'Left out', 'Model', 'Started', 'Finished'],
            rounds.map((r) =>
              h(
                'tr',
                null,
                h('td', null, String(r.round)),
                h('td', { title: r.error ?? '' }, r.status),
                h('td', { class: 'mono' }, shortHex(r.coordinator, 6)),
                h('td', null, String(r.participants.length)),
                h('td', null, String(r.leftOut.length)),
                h('td', { class: 'mono' }, shortHex(r.modelHash)),
                h('td', null, fmtDateTime(r.startedAt)),
                h('td', null, fmtDateTime(r.finishedAt)),
              ),
            ),
          )
        : emptyState('No rounds have run.', 'rounds-empty'),
    );
  };
  const load = async () => {
    error = await attempt(async () => {
      const d = await gw.query<{ modelVersions: Connection<ModelVersion>; flRounds: Connection<FlRound> }>(
        MODELS,
      );
      models = d.modelVersions.edges.map((e) => e.node);
      rounds = d.flRounds.edges.map((e) => e.node);
    });
    render();
    await privacy.load();
  };
  render();
  const offLoad = loadAndReload(gw, load);
  const offSub = gw.subscribe<{ modelVersion: ModelVersion }>(SUB_MODEL, {}, ({ modelVersion }) => {
    models = [modelVersion, ...models.filter((m) => m.hash !== modelVersion.hash)];
    render();
    // A new version closes a round: re-read so the rounds table follows too.
    void load();
  });
  return () => {
    offLoad();
    offSub();
  };
};

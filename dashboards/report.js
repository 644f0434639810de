// Printable report: the fitted law in text, its verdict and backtest, the figures as inline SVG
// (vector, paper-ready) and the vertex table.
'use strict';
(() => {
  const {api, el, param, sci, short, fixed, num, nav, fail, chartSvg} = isoflop;
  const id = param('id');
  nav('report', id);
  const main = document.getElementById('main');
  document.getElementById('print').onclick = () => window.print();

  // The law's parameters and exponents with their bootstrap 95% intervals
  // (as on the law page), "no bootstrap yet" before the final fit has them.
  function params(law) {
    const f = lawplots.lawOf(law.fit);
    const ci95 = law.bootstrap && law.bootstrap.ci95;
    const rows = f ? [['E', f.e, 'E'], ['A', f.a, 'A'], ['B', f.b, 'B'], ['α (alpha)', f.alpha, 'alpha'],
                      ['β (beta)', f.beta, 'beta'], ['a = β/(α+β): N_opt ∝ C^a', f.beta / (f.alpha + f.beta), 'a'],
                      ['b = α/(α+β): D_opt ∝ C^b', f.alpha / (f.alpha + f.beta), 'b']] : [];
    document.getElementById('params').hidden = !f;
    document.querySelector('#params tbody').replaceChildren(...rows.map(([k, v, key]) => {
      const i = ci95 && ci95[key];
      return el('tr', {}, el('th', {scope: 'row', text: k}), el('td', {class: 'num', text: num(v)}),
                el('td', {class: 'num', 'data-ci': key, text: i ? `[${num(i[0])}, ${num(i[1])}]` : 'no bootstrap yet'}));
    }));
  }

  async function load() {
    const enc = encodeURIComponent(id);
    const [sweep, law] = await Promise.all([api(`sweeps/${enc}`), api(`sweeps/${enc}/law`)]);
    document.getElementById('title').textContent = `Sweep report: ${sweep.name}`;
    document.title = `${sweep.name} report · isoflop`;
    document.getElementById('law-text').textContent = lawplots.lawText(law.fit, law);
    params(law);
    const note = document.getElementById('bootstrap-note');
    note.textContent = lawplots.lawOf(law.fit) && !law.bootstrap ? (law.bootstrap_note || '') : '';
    note.hidden = !note.textContent;  // no empty yellow box once bands exist
    const facts = [['Sweep id', sweep.id], ['State', sweep.state.replace('SWEEP_', '').toLowerCase()],
                   ['Trials', `${sweep.ended}/${sweep.n_trials} ended, ${(sweep.counts.SUCCEEDED || 0)} succeeded`],
                   ['Budgets (FLOPs)', (sweep.budgets || []).map((b) => sci(b, 3)).join(', ')],
                   ['FLOP convention', '6·N_matmul + 12·L·d_model·T per token; the fit uses N = N_total, ' +
                    (law.flops_convention ? law.flops_convention.description : 'C = 6ND')],
                   ['Best validation loss', fixed(sweep.best_val_loss)]];
    const v = lawplots.verdictOf(law);
    if (v) facts.unshift(['Verdict', `${v.level}${(v.reasons || []).length ? ': ' + v.reasons.join('; ') : ''}`]);
    const bt = lawplots.backtestText(law);
    if (bt) facts.push(['Backtest', bt.replace(/^Backtest: /, '')]);
    document.getElementById('facts').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', {text: k}), el('dd', {text: v})]));
    // Draw with Chart.js off screen, then keep only the vector SVG.
    const scratch = document.getElementById('scratch');
    const charts = lawplots.draw(scratch, law);
    const figures = document.getElementById('figures');
    for (const c of charts) {
      if (c.canvas.closest('figure').hidden) continue;  // nothing to show (no law, no backtest)
      const fig = el('figure', {class: 'chart', id: 'report-' + c.canvas.closest('figure').id});
      fig.innerHTML = chartSvg(c);
      fig.append(el('figcaption', {text: c.isoflopTitle}));
      figures.append(fig);
    }
    document.querySelector('#vertices tbody').replaceChildren(...law.budgets.map((b) => el('tr', {},
      el('td', {class: 'num', text: sci(b.flops, 3)}), el('td', {class: 'num', text: b.points.length}),
      el('td', {class: 'num', text: b.vertex ? short(b.vertex.n) : '—'}),
      el('td', {class: 'num', text: b.vertex ? short(b.vertex.d) : '—'}),
      el('td', {class: 'num', text: b.vertex ? fixed(b.vertex.loss) : '—'}))));
    window.isoflopReady = true;
  }
  if (!id) { fail(main, 'no sweep id'); return; }
  load().catch((e) => fail(main, e));
})();

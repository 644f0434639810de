// Scaling-law page: profiles, surface, frontier, parameters and the
// calculator; refits appear live as trials finish.
'use strict';
(() => {
  const {api, el, param, sci, fixed, later, live, nav, fail} = isoflop;
  const id = param('id');
  nav('law', id);
  const main = document.getElementById('main');
  const enc = encodeURIComponent(id || '');
  let charts = null;

  function params(law) {
    const f = law.fit;
    const ci95 = law.bootstrap && law.bootstrap.ci95;
    const ci = (key) => {
      const i = ci95 && ci95[key];
      return i ? `[${i[0].toPrecision(5)}, ${i[1].toPrecision(5)}]` : 'no bootstrap yet';
    };
    const rows = f ? [['E', f.e, 'E'], ['A', f.a, 'A'], ['B', f.b, 'B'], ['α (alpha)', f.alpha, 'alpha'],
                      ['β (beta)', f.beta, 'beta'], ['a = β/(α+β)', f.beta / (f.alpha + f.beta), 'a'],
                      ['b = α/(α+β)', f.alpha / (f.alpha + f.beta), 'b']] : [];
    document.querySelector('#params tbody').replaceChildren(...rows.map(([k, v, key]) =>
      el('tr', {}, el('th', {scope: 'row', text: k}), el('td', {class: 'num', text: v.toPrecision(10)}),
         el('td', {class: ci95 && ci95[key] ? 'num' : 'muted', text: ci(key), 'data-ci': key}))));
  }

  async function load() {
    const law = await api(`sweeps/${enc}/law`);
    document.getElementById('title').textContent = 'Scaling law · ' + id.slice(0, 12);
    // No stored fit yet: the coordinator queued one; the 'fit' event reloads.
    document.getElementById('law-text').textContent = law.fit_pending
      ? 'Fit pending: the coordinator is fitting the trials so far.' : lawplots.lawText(law.fit);
    document.getElementById('bootstrap-note').textContent = law.bootstrap ? '' : law.bootstrap_note;
    params(law);
    if (!charts) charts = lawplots.draw(document.getElementById('charts'), law);
    else lawplots.update(charts, law);
    window.isoflopLaw = law;
  }

  async function calculate(e) {
    if (e) e.preventDefault();
    const flops = document.getElementById('calc-flops').value.trim();
    const out = (k, text, value) => {
      const o = document.getElementById('calc-' + k);
      o.textContent = text;
      o.dataset.value = value;
    };
    try {
      const r = await api(`sweeps/${enc}/optimal?flops=${encodeURIComponent(flops)}`);
      out('n', `${sci(r.n_opt, 4)} (${r.n_opt.toPrecision(17)})`, r.n_opt);
      out('d', `${sci(r.d_opt, 4)} (${r.d_opt.toPrecision(17)})`, r.d_opt);
      out('loss', fixed(r.predicted_loss, 5), r.predicted_loss);
      const range = (k, name) => r.intervals && r.intervals[k] ?
        `${name} ${sci(r.intervals[k][0], 3)} – ${sci(r.intervals[k][1], 3)}` : null;
      const ranges = [range('params', 'N'), range('tokens', 'D'), range('loss', 'loss')].filter((x) => x);
      out('ci', ranges.length ? ranges.join('; ') : 'no bootstrap yet', ranges.length ? JSON.stringify(r.intervals) : '');
    } catch (err) {
      out('n', '—', ''); out('d', '—', ''); out('loss', '—', '');
      out('ci', String(err.message), '');
    }
  }

  if (!id) { fail(main, 'no sweep id: open this page from the sweeps list'); return; }
  document.getElementById('calc').addEventListener('submit', calculate);
  load().then(() => calculate()).then(() => { window.isoflopReady = true; }).catch((e) => fail(main, e));
  const reload = later(() => load().catch(() => {}), 1000);
  live('sweep=' + enc, {trial: (t) => { if (t.state === 'SUCCEEDED') reload(); }, fit: () => { reload(); calculate(); },
                        reset: reload}, document.getElementById('live'));
})();

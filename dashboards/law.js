// Scaling-law page: the verdict, the backtest, profiles, surface, frontier,
// diagnostics, parameters and the calculator; refits appear live as trials
// finish. A sweep without a usable law still shows its profiles and says why.
'use strict';
(() => {
  const {api, el, param, sci, num, later, live, nav, fail} = isoflop;
  const id = param('id');
  nav('law', id);
  const main = document.getElementById('main');
  const enc = encodeURIComponent(id || '');
  let charts = null;
  let largest = 0;  // the sweep's largest budget (FLOPs)
  let noLaw = null;  // why there is no law to ask ('' when there is one; null: not loaded yet)

  function params(law) {
    const f = lawplots.lawOf(law.fit);
    const ci95 = law.bootstrap && law.bootstrap.ci95;
    const ci = (key) => {
      const i = ci95 && ci95[key];
      return i ? `[${num(i[0])}, ${num(i[1])}]` : 'no bootstrap yet';
    };
    const rows = f ? [['E', f.e, 'E'], ['A', f.a, 'A'], ['B', f.b, 'B'], ['α (alpha)', f.alpha, 'alpha'],
                      ['β (beta)', f.beta, 'beta'], ['a = β/(α+β)', f.beta / (f.alpha + f.beta), 'a'],
                      ['b = α/(α+β)', f.alpha / (f.alpha + f.beta), 'b']] : [];
    document.querySelector('#params tbody').replaceChildren(...rows.map(([k, v, key]) =>
      el('tr', {}, el('th', {scope: 'row', text: k}),
         el('td', {class: 'num', text: num(v), title: String(v), 'data-value': v}),
         el('td', {class: ci95 && ci95[key] ? 'num' : 'muted', text: ci(key), 'data-ci': key}))));
  }

  function verdict(law) {
    const v = lawplots.verdictOf(law);
    const box = document.getElementById('verdict');
    box.hidden = !v;
    if (!v) return;
    box.dataset.level = v.level;
    document.getElementById('verdict-level').textContent = v.level;
    const reasons = Array.isArray(v.reasons) ? v.reasons : [];
    document.getElementById('verdict-reasons').replaceChildren(
      ...(reasons.length ? reasons : [v.level === 'ok' ? 'all checks passed' : 'no reason given'])
        .map((r) => el('li', {text: r})));
  }

  async function load() {
    const law = await api(`sweeps/${enc}/law`);
    document.getElementById('title').textContent = 'Scaling law · ' + id.slice(0, 12);
    document.getElementById('law-text').textContent = lawplots.lawText(law.fit, law);
    const note = document.getElementById('bootstrap-note');
    note.textContent = lawplots.lawOf(law.fit) && !law.bootstrap ? (law.bootstrap_note || '') : '';
    note.hidden = !note.textContent;  // no empty yellow box
    verdict(law);
    const bt = document.getElementById('backtest');
    bt.textContent = lawplots.backtestText(law);
    bt.hidden = !bt.textContent;
    params(law);
    noLaw = lawplots.noLawReason(law);
    largest = Math.max(0, ...(law.budgets || []).map((b) => b.flops).filter((c) => isFinite(c)));
    const box = document.getElementById('calc-flops');
    if (!box.value && largest > 0) box.value = sci(10 * largest, 3);
    if (!charts) charts = lawplots.draw(document.getElementById('charts'), law);
    else lawplots.update(charts, law);
    window.isoflopLaw = law;
  }

  // "10× the largest budget (2e12 FLOPs)"; a warning past 100×.
  function extrapolation(flops) {
    const p = document.getElementById('calc-extrapolation');
    const c = Number(flops);
    p.className = '';
    if (!(largest > 0) || !(c > 0)) { p.textContent = ''; return; }
    const factor = c / largest;
    const times = factor >= 1 ? `${num(factor)}×` : `${num(factor)}× (inside the sweep)`;
    p.dataset.factor = factor;
    p.textContent = `${times} the sweep's largest budget (${sci(largest, 3)} FLOPs).`;
    if (factor > 100) {
      p.className = 'warn';
      p.textContent += ' Beyond 100× the law is an extrapolation far past its data: treat the answer ' +
                       'as a rough guide and check it with a larger sweep.';
    }
  }

  async function calculate(e) {
    if (e) e.preventDefault();
    const flops = document.getElementById('calc-flops').value.trim();
    const out = (k, text, value) => {
      const o = document.getElementById('calc-' + k);
      o.textContent = text;
      o.dataset.value = value;
    };
    extrapolation(flops);
    if (!flops || noLaw === null) return;
    if (noLaw) {  // nothing to ask the coordinator
      out('n', '—', ''); out('d', '—', ''); out('loss', '—', '');
      out('ci', noLaw, '');
      return;
    }
    try {
      const r = await api(`sweeps/${enc}/optimal?flops=${encodeURIComponent(flops)}`);
      out('n', num(r.n_opt), r.n_opt);
      out('d', num(r.d_opt), r.d_opt);
      out('loss', num(r.predicted_loss), r.predicted_loss);
      const range = (k, name) => r.intervals && r.intervals[k] ?
        `${name} ${num(r.intervals[k][0])} – ${num(r.intervals[k][1])}` : null;
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

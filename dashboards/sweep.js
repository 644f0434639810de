// Sweep page: summary, trial table (sorted, filtered and paginated on the
// server) and live loss curves pushed over Server-Sent Events.
'use strict';
(() => {
  const {api, el, param, sci, short, fixed, later, live, chart, chartReady, line, nav, fail} = isoflop;
  const id = param('id');
  nav('sweep', id);
  const main = document.getElementById('main');
  const enc = encodeURIComponent(id || '');
  const view = {sort: 'ordinal', order: 'asc', offset: 0, limit: 100, state: '', q: ''};
  const columns = [  // key, header, sortable key, numeric
    ['ordinal', '#', 'ordinal', true], ['id', 'Trial', null], ['shape', 'Shape d×L×h', null],
    ['n', 'N params', 'n', true], ['d', 'D tokens', 'd', true], ['flops', 'FLOPs', 'flops', true],
    ['state', 'State', 'state'], ['attempt', 'Attempts', 'attempt', true], ['progress', 'Step', null, true],
    ['loss', 'Loss (train → val)', 'loss', true], ['tokens_per_s', 'Tokens/s', 'tokens_per_s', true],
    ['worker', 'Worker', 'worker']];
  let curvesChart = null;
  const byTrial = new Map();  // trial id -> dataset
  // Trunk and branches (docs/architecture.md §2.2): trial id -> {role, trunk,
  // start_step, shape} from the trials API, to draw a shape's trunk and its
  // branches as one family (one colour; a branch's curve continues its
  // trunk's from its start step).
  const roles = new Map();
  const rows = new Map();  // trial id -> tr

  function header() {
    const tr = document.querySelector('#trials thead tr');
    tr.replaceChildren(...columns.map(([key, text, sort, num]) => {
      const th = el('th', {scope: 'col', class: num ? 'num' : null});
      if (!sort) { th.textContent = text; return th; }
      const active = view.sort === sort;
      th.setAttribute('aria-sort', active ? (view.order === 'asc' ? 'ascending' : 'descending') : 'none');
      th.append(el('button', {type: 'button', onclick: () => {
        view.order = active && view.order === 'asc' ? 'desc' : 'asc';
        view.sort = sort; view.offset = 0; header(); loadTrials();
      }}, text + (active ? (view.order === 'asc' ? ' ▲' : ' ▼') : '')));
      return th;
    }));
  }

  function cells(t) {
    const loss = t.val_loss !== null ? `${fixed(t.train_loss)} → ${fixed(t.val_loss)}` : fixed(t.train_loss);
    return [
      el('td', {class: 'num', text: t.ordinal}), el('td', {title: t.id}, t.state === 'SUCCEEDED' ?
          el('a', {href: `/trial.html?id=${encodeURIComponent(t.id)}&sweep=${enc}`, title: 'sample from this trial'},
             t.id.slice(0, 12)) : t.id.slice(0, 12)),
      el('td', {text: t.shape.join('×') + (t.role === 'trunk' ? ' trunk'
          : t.role === 'branch' ? ` branch from step ${t.start_step}` : '')}),
      el('td', {class: 'num', text: short(t.n)}),
      el('td', {class: 'num', text: short(t.d)}), el('td', {class: 'num', text: sci(t.flops)}),
      el('td', {class: 'state-' + t.state, text: t.state.toLowerCase(), title: t.error || null}),
      el('td', {class: 'num', text: t.attempt}), el('td', {class: 'num', text: `${t.step}/${t.steps}`}),
      el('td', {class: 'num', text: loss}), el('td', {class: 'num', text: short(t.tokens_per_s)}),
      el('td', {text: t.worker || '—'})];
  }

  async function loadTrials() {
    const q = new URLSearchParams({offset: view.offset, limit: view.limit, sort: view.sort, order: view.order});
    if (view.state) q.set('state', view.state);
    if (view.q) q.set('q', view.q);
    const page = await api(`sweeps/${enc}/trials?${q}`);
    for (const t of page.trials) {
      roles.set(t.id, {role: t.role, trunk: t.trunk, start_step: t.start_step, shape: t.shape});
    }
    rows.clear();
    document.querySelector('#trials tbody').replaceChildren(...page.trials.map((t) => {
      const tr = el('tr', {'data-trial': t.id}, cells(t));
      tr.isoflopTrial = t;
      rows.set(t.id, tr);
      return tr;
    }));
    const last = Math.min(page.total, view.offset + page.trials.length);
    document.getElementById('page').textContent =
        page.total ? `${view.offset + 1}–${last} of ${page.total}` : 'no trials match';
    document.getElementById('prev').disabled = view.offset === 0;
    document.getElementById('next').disabled = last >= page.total;
  }

  async function loadSummary() {
    const s = await api(`sweeps/${enc}`);
    document.getElementById('title').textContent = s.name;
    document.title = `${s.name} · isoflop`;
    const stat = (label, value) => el('div', {}, el('span', {class: 'muted', text: label}), el('b', {text: value}));
    document.getElementById('summary').replaceChildren(
      stat('State', s.state.replace('SWEEP_', '').toLowerCase()),
      el('div', {}, el('span', {class: 'muted', text: 'Progress'}),
         el('b', {}, el('progress', {max: s.n_trials || 1, value: s.ended, 'aria-label': 'trials ended'}),
            ` ${s.ended}/${s.n_trials}`)),
      stat('Running', s.running || 0),
      ...Object.entries(s.counts).map(([k, v]) => stat(k.toLowerCase(), v)),
      stat('Best val loss', fixed(s.best_val_loss)),
      stat('Budgets', (s.budgets || []).map((b) => sci(b, 2)).join(', ')),
      el('div', {}, el('span', {class: 'muted', text: 'Sweep id'}), el('b', {text: s.id, style: 'font-size:.9rem'})));
  }

  function curveData(points) { return points.map(([x, y]) => ({x: Math.max(1, x), y})); }

  async function loadCurves() {
    const {curves} = await api(`sweeps/${enc}/curves?select=auto&points=200&max_trials=24`);
    // A branch's trunk is drawn with it even when the trunk ended long ago.
    const shown = new Set(curves.map((c) => c.trial));
    const trunks = [...new Set(curves.map((c) => (roles.get(c.trial) || {}).trunk)
                                    .filter((t) => t && !shown.has(t)))].slice(0, 24);
    if (trunks.length) {
      const more = await api(`sweeps/${enc}/curves?points=200&max_trials=24&${
          trunks.map((t) => `trial=${encodeURIComponent(t)}`).join('&')}`);
      curves.unshift(...more.curves);
    }
    await chartReady;
    byTrial.clear();
    const family = new Map();  // trunk id -> colour index
    const datasets = curves.map((c, i) => {
      const r = roles.get(c.trial) || {};
      const head = r.role === 'branch' ? r.trunk : c.trial;
      if (!family.has(head)) family.set(head, family.size);
      const name = r.role === 'trunk' ? `${r.shape.join('×')} trunk`
          : r.role === 'branch' ? `${r.shape.join('×')} branch @${r.start_step}` : c.trial.slice(0, 12);
      const ds = line(`${name} (${c.state.toLowerCase()})`, curveData(c.points),
                      r.role ? family.get(head) : i);
      if (r.role === 'trunk') ds.borderDash = [6, 3];
      ds.trial = c.trial;
      ds.family = r.role ? head : null;
      byTrial.set(c.trial, ds);
      return ds;
    });
    if (!curvesChart) {
      curvesChart = chart(document.getElementById('curves'), 'curves', 'Training loss of running (or latest) trials',
                          {xTitle: 'step', yTitle: 'training loss (nats/token)', datasets,
                           describe: 'log-log loss curves, updated live'});
    } else {
      curvesChart.data.datasets = datasets;
      curvesChart.update('none');
    }
  }

  // Live points: appended to the curve of their trial (a new running trial
  // gets its curve), redrawn at most once per animation frame.
  let pending = false;
  const redraw = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; curvesChart.update('none'); });
  };
  // 1 s: the API's freshness bound (API.md), so the reload sees the trial.
  const reloadCurves = later(() => loadCurves().catch(() => {}), 1000);
  function onMetric(m) {
    const ds = byTrial.get(m.trial);
    if (!ds) { reloadCurves(); return; }
    for (const [step, name, value] of m.points) {
      if (name !== 'train_loss' || value === null) continue;
      const pts = ds.data;
      if (pts.length && pts[pts.length - 1].x >= step) continue;
      pts.push({x: Math.max(1, step), y: value});
      if (pts.length > 1000) ds.data = pts.filter((p, i) => i % 2 === 0 || i === pts.length - 1);
    }
    redraw();
    const tr = rows.get(m.trial);
    if (tr) {
      const t = tr.isoflopTrial;
      for (const [step, name, value] of m.points) {
        t.step = Math.max(t.step, step);
        if (name === 'train_loss') t.train_loss = value;
        if (name === 'tokens_per_s') t.tokens_per_s = value;
      }
      tr.replaceChildren(...cells(t));
    }
  }
  const refresh = later(() => Promise.all([loadSummary(), loadTrials()]).catch(() => {}), 1000);
  function onTrial(t) {
    const tr = rows.get(t.id);
    if (tr) {
      Object.assign(tr.isoflopTrial, t);
      tr.replaceChildren(...cells(tr.isoflopTrial));
    }
    if (t.state === 'RUNNING' && !byTrial.has(t.id)) reloadCurves();
    refresh();
  }

  const filters = document.getElementById('filters');
  filters.addEventListener('submit', (e) => e.preventDefault());
  const applyFilters = later(() => {
    view.state = filters.state.value; view.q = filters.q.value.trim(); view.limit = Number(filters.limit.value);
    view.offset = 0; loadTrials().catch((e) => fail(main, e));
  }, 250);
  filters.addEventListener('input', applyFilters);
  filters.addEventListener('change', applyFilters);
  document.getElementById('prev').onclick = () => { view.offset = Math.max(0, view.offset - view.limit); loadTrials(); };
  document.getElementById('next').onclick = () => { view.offset += view.limit; loadTrials(); };

  if (!id) { fail(main, 'no sweep id: open this page from the sweeps list'); return; }
  header();
  // The curves after the trials: their roles group trunks and branches.
  Promise.all([loadSummary(), loadTrials().then(loadCurves)]).then(() => {
    // First meaningful paint: summary, table and curves are in the DOM;
    // the next frame shows them.
    requestAnimationFrame(() => {
      window.isoflopPaintMs = performance.now();
      performance.mark('isoflop-first-meaningful-paint');
      window.isoflopReady = true;
    });
  }).catch((e) => fail(main, e));
  live('sweep=' + enc, {metric: onMetric, trial: onTrial, sweep: refresh, fit: refresh,
                        reset: () => { loadCurves(); refresh(); }}, document.getElementById('live'));
})();

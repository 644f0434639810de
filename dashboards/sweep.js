// Sweep page: summary, trial table (sorted, filtered and paginated on the
// server) and live loss curves pushed over Server-Sent Events. The curves
// are plotted against step, tokens, FLOPs or training time (the x-axis
// selector), training and validation loss, coloured by budget with a shade
// per size (or the reverse), optionally smoothed, on a y axis that fits the
// data.
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
  const byTrial = new Map();  // trial id -> its training-loss dataset
  const valByTrial = new Map();  // trial id -> its validation-loss dataset
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

  // The full id, copied to the clipboard for the CLI (`isoflop trial logs ID`).
  function copyButton(text) {
    return el('button', {type: 'button', class: 'copy', 'aria-label': 'copy id ' + text, title: 'copy ' + text,
                         onclick: (e) => copyText(text, e.currentTarget)}, 'Copy');
  }
  function copyText(text, button) {
    const done = () => { button.textContent = 'Copied'; setTimeout(() => { button.textContent = 'Copy'; }, 1500); };
    const fallback = () => {  // no Clipboard API (plain HTTP from another host) or permission refused
      const box = el('textarea', {'aria-hidden': 'true', style: 'position:fixed;left:-9999px'});
      box.value = text;
      document.body.append(box);
      box.select();
      document.execCommand('copy');
      box.remove();
      done();
    };
    window.isoflopCopied = text;
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, fallback);
    else fallback();
  }

  function cells(t) {
    const loss = t.val_loss !== null ? `${fixed(t.train_loss)} → ${fixed(t.val_loss)}` : fixed(t.train_loss);
    return [
      el('td', {class: 'num', text: t.ordinal}), el('td', {class: 'trial-id'}, t.state === 'SUCCEEDED' ?
          el('a', {href: `/trial.html?id=${encodeURIComponent(t.id)}&sweep=${enc}`, title: 'sample from this trial'},
             t.id) : el('span', {text: t.id}), copyButton(t.id)),
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

  // The stored fit's verdict and backtest at the top (docs/fitting.md), read
  // only when the sweep has a stored fit: the sweep page never queues one.
  async function loadFit(s) {
    if (!s.has_fit) return;
    const law = await api(`sweeps/${enc}/law`);
    const v = lawplots.verdictOf(law);
    const box = document.getElementById('fit-summary');
    box.hidden = !v && !lawplots.lawOf(law.fit);
    box.dataset.level = v ? v.level : '';
    document.getElementById('fit-level').textContent = v ? v.level : 'no verdict';
    document.getElementById('fit-link').href = '/law.html?id=' + enc;
    document.getElementById('fit-reasons').textContent =
        lawplots.lawText(law.fit, law) + (v && (v.reasons || []).length ? ' ' + v.reasons.join('; ') + '.' : '');
    document.getElementById('fit-backtest').textContent = lawplots.backtestText(law);
  }
  let lastSummary = null;
  async function loadSummary() {
    lastSummary = await api(`sweeps/${enc}`);
    showSummary(lastSummary);
  }
  function showSummary(s) {
    document.getElementById('title').textContent = s.name;
    document.title = `${s.name} · isoflop`;
    const stat = (label, value, extra = {}) =>
      el('div', extra, el('span', {class: 'muted', text: label}), el('b', {text: value}));
    // One count per trial state, in the lifecycle's order, each once
    // (docs/architecture.md §2); zero counts of the rarer states left out.
    const order = ['PENDING', 'LEASED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'];
    const always = new Set(['PENDING', 'RUNNING', 'SUCCEEDED']);
    const counts = order.filter((k) => always.has(k) || s.counts[k])
                        .map((k) => stat(k.toLowerCase(), s.counts[k] || 0, {class: 'count', 'data-state': k}));
    // A paused sweep says so: its pending trials are held (isoflop sweep
    // pause); the CLI prints PAUSED for the same sweep (cli/output.cc).
    const state = sweepState(s);
    document.getElementById('summary').replaceChildren(
      stat('State', state, {id: 'sweep-state', class: 'state-' + s.state, 'data-paused': s.paused ? 'true' : 'false'}),
      el('div', {}, el('span', {class: 'muted', text: 'Progress'}),
         el('b', {}, el('progress', {max: s.n_trials || 1, value: s.ended, 'aria-label': 'trials ended'}),
            ` ${s.ended}/${s.n_trials}`)),
      ...counts,
      stat('Best val loss', fixed(s.best_val_loss)),
      stat('Budgets', (s.budgets || []).map((b) => sci(b, 2)).join(', ')),
      el('div', {}, el('span', {class: 'muted', text: 'Sweep id'}),
         el('b', {class: 'trial-id'}, el('span', {text: s.id}), ' ', copyButton(s.id))));
    showActions(s);
  }
  // Pause / resume / cancel / retry as the CLI's verbs (POST
  // /api/v1/sweeps/{id}/{action}, dashboards/API.md); each shown only where
  // it applies to the sweep's state.
  function showActions(s) {
    const running = s.state === 'SWEEP_RUNNING';
    document.getElementById('act-pause').hidden = !running || s.paused;
    document.getElementById('act-resume').hidden = !running || !s.paused;
    document.getElementById('act-cancel').hidden = !running;
    document.getElementById('act-retry').hidden = running || !(s.counts.FAILED > 0);
  }
  async function act(action) {
    const status = document.getElementById('act-status');
    if (action === 'cancel' && !confirm('Cancel every trial of this sweep that has not ended?')) return;
    status.textContent = action + '…';
    try {
      const res = await fetch(`/api/v1/sweeps/${enc}/${action}`, {method: 'POST', credentials: 'same-origin',
                                                                   headers: {'Content-Type': 'application/json'}, body: '{}'});
      const body = await res.json();
      if (!res.ok) throw new Error(body.error || res.statusText);
      status.textContent = {pause: 'paused', resume: 'resumed', cancel: 'cancelled', retry: 'failed trials re-queued'}[action];
      lastSummary = {...lastSummary, state: body.state, paused: body.paused};
      showSummary(lastSummary);
      refresh();
    } catch (e) {
      status.textContent = `${action} refused: ${e.message || e}`;
    }
  }
  for (const b of document.querySelectorAll('#actions button')) b.onclick = () => act(b.dataset.action);

  const sweepState = (s) => s.paused && s.state === 'SWEEP_RUNNING' ? 'paused'
      : s.state.replace('SWEEP_', '').toLowerCase();

  // ------------------------------------------------------------- curves
  // Each curve keeps its raw points (step, value); what is plotted is
  // derived from them by the x axis (step, tokens = step x tokens/step,
  // FLOPs = step x FLOPs/step: the /curves answer's per-trial scales,
  // dashboards/API.md) and the smoothing, so every control redraws at once.
  const curveView = {x: 'step', metrics: ['train_loss', 'val_loss'], colourBy: 'budget', smooth: 0};
  const X_AXES = {step: ['optimizer step', () => 1], tokens: ['tokens seen', (c) => c.tokens_per_step],
                  flops: ['compute spent (FLOPs)', (c) => c.flops_per_step],
                  time: ['training time (s, from tokens/s)', null]};
  let curveMeta = [];  // the /curves answer's curves (without points), for colours
  const curveControls = document.getElementById('curve-controls');

  // Exponential moving average with weight `a` on the past (0: off), as W&B's
  // smoothing slider; the first point is kept.
  function smoothed(raw, a) {
    if (!(a > 0)) return raw;
    let m = null;
    return raw.map(([x, y]) => { m = m === null ? y : a * m + (1 - a) * y; return [x, m]; });
  }
  // Training time: step -> seconds, integrated from the trial's tokens_per_s
  // curve (seconds per step = tokens per step / tokens per second, the rate
  // of the next reported point; past the last, the last rate). Time spent
  // outside training steps (evals, checkpoints, queueing) is not in it.
  const timers = new Map();  // trial id -> step -> seconds
  function timer(tokensPerStep, rates) {
    const cum = [];  // [step, seconds at that step, seconds per step up to it]
    let t = 0, prev = 0;
    for (const [step, tps] of rates) {
      if (!(tps > 0) || step <= prev) continue;
      const per = tokensPerStep / tps;
      t += (step - prev) * per;
      cum.push([step, t, per]);
      prev = step;
    }
    return (step) => {
      if (!cum.length) return null;
      let i = 0;
      while (i < cum.length && cum[i][0] < step) ++i;
      if (i === cum.length) { const [s, t1, per] = cum[cum.length - 1]; return t1 + (step - s) * per; }
      const [s, t1, per] = cum[i];
      return t1 - (s - step) * per;
    };
  }
  async function loadTimers() {
    const ids = curveMeta.map((c) => c.trial).filter((t) => !timers.has(t));
    if (!ids.length) return;
    const {curves} = await api(`sweeps/${enc}/curves?name=tokens_per_s&points=200&max_trials=48&${
        ids.map((t) => `trial=${encodeURIComponent(t)}`).join('&')}`);
    for (const c of curves) {
      const meta = curveMeta.find((m) => m.trial === c.trial);
      if (meta && c.points.length) timers.set(c.trial, timer(meta.tokens_per_step, c.points));
    }
  }
  function plotted(ds) {
    if (curveView.x === 'time') {
      const time = timers.get(ds.trial);
      if (!time) return [];
      return smoothed(ds.raw, curveView.smooth).map(([step, y]) => ({x: time(step), y}))
          .filter((p) => p.x > 0);
    }
    const scale = X_AXES[curveView.x][1](ds.meta) || 0;
    return smoothed(ds.raw, curveView.smooth).map(([step, y]) => ({x: Math.max(1, step) * (scale || 1), y}))
        .filter((p) => curveView.x === 'step' || scale > 0);
  }

  // Colour by budget (hue) and size (shade: darker = larger N), or the
  // reverse; a branch takes its trunk's colour (one family, one colour).
  function groups(meta) {
    const budgets = [...new Set(meta.map((c) => c.flops_budget))].sort((a, b) => a - b);
    const sizes = [...new Set(meta.map((c) => c.n))].sort((a, b) => a - b);
    return {budgets, sizes};
  }
  function shade(hueIndex, rank, of) {
    const base = isoflop.color(hueIndex);
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(base.slice(i, i + 2), 16));
    // rank 0 (smallest) lightest, the largest the palette colour itself.
    const f = of > 1 ? 0.55 * (1 - rank / (of - 1)) : 0;
    const mix = (v) => Math.round(v + (255 - v) * f).toString(16).padStart(2, '0');
    return '#' + mix(r) + mix(g) + mix(b);
  }
  function colourOf(c, g) {
    const bi = g.budgets.indexOf(c.flops_budget), si = g.sizes.indexOf(c.n);
    if (curveView.colourBy === 'size') return shade(si, bi, g.budgets.length);
    return shade(bi, si, g.sizes.length);
  }
  // Legend: one entry per budget (or size), not one per trial.
  function legendEntries(g) {
    const byBudget = curveView.colourBy !== 'size';
    const keys = byBudget ? g.budgets : g.sizes;
    const entries = keys.map((k, i) => {
      const col = isoflop.color(i);
      return {label: byBudget ? `C = ${sci(k, 3)}` : `N = ${short(k)}`, data: [], borderColor: col,
              backgroundColor: col, showLine: true, pointRadius: 0, isoflopLegend: true};
    });
    if (curveView.metrics.includes('val_loss')) {
      entries.push({label: 'validation (dashed, dots)', data: [], borderColor: '#4d4d4d', backgroundColor: '#4d4d4d',
                    borderDash: [5, 3], showLine: true, pointRadius: 0, isoflopLegend: true});
    }
    return entries;
  }

  function yLimits(datasets) {
    let lo = Infinity, hi = -Infinity;
    for (const ds of datasets) {
      if (ds.isoflopLegend) continue;
      for (const p of ds.data) if (p.y !== null && isFinite(p.y) && p.y > 0) { lo = Math.min(lo, p.y); hi = Math.max(hi, p.y); }
    }
    if (!(hi >= lo)) return null;
    const pad = Math.max((hi - lo) * 0.04, hi * 1e-3);
    return [Math.max(lo - pad, lo / 2), hi + pad];
  }
  // The y axis fits the data (a little padding), not the decades around it.
  function fitAxes() {
    const y = yLimits(curvesChart.data.datasets);
    const sy = curvesChart.options.scales.y;
    sy.min = y ? y[0] : undefined;
    sy.max = y ? y[1] : undefined;
    const sx = curvesChart.options.scales.x;
    sx.title.text = X_AXES[curveView.x][0];
    curvesChart.isoflopAxes = [X_AXES[curveView.x][0], curvesChart.isoflopAxes[1]];
  }

  function buildDatasets(curvesByMetric) {
    const g = groups(curveMeta);
    const family = new Map();  // trunk id -> its colour
    const datasets = [];
    for (const [metric, curves] of curvesByMetric) {
      const val = metric === 'val_loss';
      for (const c of curves) {
        if (val && !c.points.length) continue;  // a trial not yet evaluated
        const meta = curveMeta.find((m) => m.trial === c.trial) || c;
        const r = roles.get(c.trial) || {};
        const head = r.role === 'branch' ? r.trunk : c.trial;
        let col = colourOf(meta, g);
        if (r.role) {
          if (!family.has(head)) {
            const headMeta = curveMeta.find((m) => m.trial === head);
            family.set(head, headMeta ? colourOf(headMeta, g) : col);
          }
          col = family.get(head);
        }
        const name = r.role === 'trunk' ? `${r.shape.join('×')} trunk`
            : r.role === 'branch' ? `${r.shape.join('×')} branch @${r.start_step}`
            : `C=${sci(meta.flops_budget, 2)} N=${short(meta.n)}`;
        const ds = line(`${name}${val ? ' val' : ''} (${c.state.toLowerCase()})`, [], 0,
                        {borderColor: col, backgroundColor: col, hideInLegend: true});
        if (val) { ds.borderDash = [5, 3]; ds.pointRadius = 2.5; ds.borderWidth = 1.5; }
        else if (r.role === 'trunk') ds.borderDash = [6, 3];
        ds.raw = c.points;  // shared with allCurves: live points survive a redraw
        ds.meta = meta;
        ds.metric = metric;
        ds.trial = c.trial;
        ds.family = r.role ? head : null;
        ds.data = plotted(ds);
        if (!val) byTrial.set(c.trial, ds);
        else valByTrial.set(c.trial, ds);
        datasets.push(ds);
      }
    }
    return [...legendEntries(g), ...datasets];
  }

  let lastCurves = null;  // [[metric, curves]] of the last load
  function redrawAll() {
    if (!curvesChart || !lastCurves) return;
    byTrial.clear(); valByTrial.clear();
    curvesChart.data.datasets = buildDatasets(lastCurves);
    fitAxes();
    curvesChart.update('none');
    window.isoflopCurveView = {...curveView};
  }

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
    // Validation loss of the same trials (the trainer reports it at each
    // eval: trainer/README.md).
    let val = [];
    if (curves.length) {
      val = (await api(`sweeps/${enc}/curves?name=val_loss&points=200&max_trials=48&${
          curves.map((c) => `trial=${encodeURIComponent(c.trial)}`).join('&')}`)).curves;
    }
    curveMeta = curves.map(({points, ...m}) => m);
    if (curveView.x === 'time') await loadTimers();
    lastCurves = [['train_loss', curves], ['val_loss', val]].filter(([m]) => curveView.metrics.includes(m));
    allCurves = [['train_loss', curves], ['val_loss', val]];
    await chartReady;
    if (!curvesChart) {
      curvesChart = chart(document.getElementById('curves'), 'curves', 'Loss of running (or latest) trials',
                          {xTitle: X_AXES[curveView.x][0], yTitle: 'loss (nats/token)', datasets: [],
                           describe: 'log-log loss curves, updated live; colour by budget, shade by size'});
    }
    redrawAll();
  }
  let allCurves = [];

  async function readControls() {
    if (curveControls.x.value === 'time') await loadTimers().catch((e) => fail(main, e));
    curveView.x = curveControls.x.value;
    curveView.colourBy = curveControls.colour.value;
    curveView.smooth = Number(curveControls.smooth.value);
    curveView.metrics = ['train_loss', 'val_loss'].filter((m) => curveControls[m].checked);
    document.getElementById('smooth-value').textContent = curveView.smooth.toFixed(2);
    lastCurves = allCurves.filter(([m]) => curveView.metrics.includes(m));
    redrawAll();
  }
  curveControls.addEventListener('submit', (e) => e.preventDefault());
  curveControls.addEventListener('input', readControls);
  curveControls.addEventListener('change', readControls);

  // Live points: appended to the curve of their trial (a new running trial
  // gets its curve), redrawn at most once per animation frame.
  let pending = false;
  const redraw = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; fitAxes(); curvesChart.update('none'); });
  };
  // 1 s: the API's freshness bound (API.md), so the reload sees the trial.
  const reloadCurves = later(() => loadCurves().catch(() => {}), 1000);
  function onMetric(m) {
    const ds = byTrial.get(m.trial);
    if (!ds) { reloadCurves(); return; }
    for (const [name, target] of [['train_loss', ds], ['val_loss', valByTrial.get(m.trial)]]) {
      if (!target) {  // its first validation point: the reload draws its curve
        if (curveView.metrics.includes(name) && m.points.some(([, n]) => n === name)) reloadCurves();
        continue;
      }
      let added = false;
      for (const [step, n, value] of m.points) {
        if (n !== name || value === null) continue;
        const raw = target.raw;
        if (raw.length && raw[raw.length - 1][0] >= step) continue;
        raw.push([step, value]);
        added = true;
        if (raw.length > 1000) {  // thinned in place (the array is shared with allCurves)
          const keep = raw.filter((p, i) => i % 2 === 0 || i === raw.length - 1);
          raw.length = 0;
          raw.push(...keep);
        }
      }
      if (added) target.data = plotted(target);
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
    loadFit(lastSummary).catch(() => {});  // the law page says why, if it fails
    // First meaningful paint: summary, table and curves are in the DOM;
    // the next frame shows them.
    requestAnimationFrame(() => {
      window.isoflopPaintMs = performance.now();
      performance.mark('isoflop-first-meaningful-paint');
      window.isoflopReady = true;
    });
  }).catch((e) => fail(main, e));
  const reloadFit = later(() => loadFit({has_fit: true}).catch(() => {}), 1000);
  live('sweep=' + enc, {metric: onMetric, trial: onTrial, sweep: refresh, fit: () => { refresh(); reloadFit(); },
                        reset: () => { loadCurves(); refresh(); }}, document.getElementById('live'));
})();

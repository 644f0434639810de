// The scaling-law charts, shared by the law page and the printable report:
// IsoFLOP profiles, iso-loss contours of the fitted surface over (N, D), the
// compute-optimal frontier with published laws, residuals against N, D and
// C, predicted against observed loss, and the backtest. Every chart draws
// (points at least) when the sweep has no law; nothing here throws on a fit
// whose parameters are null.
'use strict';
const lawplots = (() => {
  const {chart, points, line, sci, short} = isoflop;
  const logspace = (lo, hi, n) => Array.from({length: n}, (_, i) => lo * Math.pow(hi / lo, i / (n - 1)));
  const range = (vals) => [Math.min(...vals), Math.max(...vals)];
  const finite = (v) => typeof v === 'number' && isFinite(v);

  // Published Approach-3 laws, both fitted under C = 6ND. Chinchilla:
  // Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models",
  // eq. 10. Epoch: Besiroglu et al. 2024, "Chinchilla Scaling: A replication
  // attempt", Table 1. The same constants as analysis/plot_svg.cc.
  const PUBLISHED = [
    {label: 'Chinchilla A3 (Hoffmann 2022)', e: 1.69, a: 406.4, b: 410.7, alpha: 0.34, beta: 0.28},
    {label: 'Epoch (Besiroglu 2024)', e: 1.82, a: 482.01, b: 2085.43, alpha: 0.3478, beta: 0.3658},
  ];

  // The fit's Approach-3 law when all five parameters are usable, else null.
  function lawOf(f) {
    if (!f) return null;
    const ok = ['e', 'a', 'b', 'alpha', 'beta'].every((k) => finite(f[k])) &&
               f.a > 0 && f.b > 0 && f.alpha > 0 && f.beta > 0;
    return ok ? f : null;
  }
  const predict = (f, n, d) => f.e + f.a / Math.pow(n, f.alpha) + f.b / Math.pow(d, f.beta);
  // N_opt(C) in closed form under C = 6ND.
  function nOpt(f, c) {
    const g = Math.pow((f.alpha * f.a) / (f.beta * f.b), 1 / (f.alpha + f.beta));
    return g * Math.pow(c / 6, f.beta / (f.alpha + f.beta));
  }
  // The verdict and backtest, at the top level or beside the fit.
  const verdictOf = (law) => law.verdict || (law.fit && law.fit.verdict) || null;
  const backtestOf = (law) => law.backtest || (law.fit && law.fit.backtest) || null;
  // The law API's "fit pending" state (a refit is queued, none stored yet).
  const pendingOf = (law) => law.fit_pending === true;

  function profiles(law) {
    const ds = [];
    const inside = [], outside = [];
    law.budgets.forEach((b, i) => {
      const label = 'C = ' + sci(b.flops, 3);
      ds.push(points(label, b.points.map((p) => ({x: p.n, y: p.loss})), i));
      if (b.parabola) {
        const p = b.parabola, pad = 0.15 * (p.ln_n_max - p.ln_n_min);
        let lo = p.ln_n_min - pad, hi = p.ln_n_max + pad;
        if (b.vertex && finite(b.vertex.n)) {  // out to an outside vertex (a decade at most)
          lo = Math.max(Math.min(lo, Math.log(b.vertex.n)), p.ln_n_min - Math.LN10);
          hi = Math.min(Math.max(hi, Math.log(b.vertex.n)), p.ln_n_max + Math.LN10);
        }
        const xs = logspace(Math.exp(lo), Math.exp(hi), 40);
        ds.push(line(label + ' parabola', xs.map((n) => {
          const x = Math.log(n);
          return {x: n, y: p.c0 + p.c1 * x + p.c2 * x * x};
        }), i, {hideInLegend: true, borderWidth: 1.5}));
      }
      if (b.vertex && finite(b.vertex.n) && finite(b.vertex.loss)) {
        (b.vertex.inside === false ? outside : inside).push({x: b.vertex.n, y: b.vertex.loss, i});
      }
    });
    const vertexSet = (label, pts, hollow) => ({
      label, data: pts.map(({x, y}) => ({x, y})), showLine: false, pointStyle: 'rectRot', pointRadius: 8,
      borderWidth: 2, borderColor: pts.map((p) => isoflop.color(p.i)),
      backgroundColor: pts.map((p) => hollow ? '#ffffff' : isoflop.color(p.i)), isoflopVertices: hollow ? 'outside' : 'inside'});
    if (inside.length) ds.push(vertexSet('vertex inside sampled N', inside, false));
    if (outside.length) ds.push(vertexSet('vertex outside sampled N (not bracketed)', outside, true));
    return ds;
  }

  // Iso-loss curves of L(N, D) = E + A/N^alpha + B/D^beta: for each level,
  // D(N) = (B / (L - E - A/N^alpha))^(1/beta) where that is positive.
  function contours(law) {
    const ds = [];
    const f = lawOf(law.fit);
    ds.push(points('trials', law.points.map((p) => ({x: p.n, y: p.d})), 0, {pointRadius: 4}));
    if (f && law.points.length) {
      const [n0, n1] = range(law.points.map((p) => p.n));
      const [d0, d1] = range(law.points.map((p) => p.d));
      const [l0, l1] = range(law.points.map((p) => p.loss));
      const levels = 6;
      for (let k = 0; k < levels; ++k) {
        const level = l0 - 0.15 * (l1 - l0) + (1.2 * (l1 - l0)) * k / (levels - 1);
        const curve = [];
        for (const n of logspace(n0 / 10, n1 * 10, 80)) {
          const rest = level - f.e - f.a / Math.pow(n, f.alpha);
          if (rest <= 0) continue;
          const d = Math.pow(f.b / rest, 1 / f.beta);
          if (d >= d0 / 100 && d <= d1 * 100) curve.push({x: n, y: d});
        }
        if (curve.length > 1) {
          ds.push(line('L = ' + level.toFixed(3), curve, k + 2, {borderWidth: 1.2, borderDash: [5, 3]}));
        }
      }
      const front = (law.frontier || []).filter((p) => finite(p.n_opt) && p.n_opt >= n0 / 10 && p.n_opt <= n1 * 10);
      ds.push(line('compute-optimal (N_opt, D_opt)', front.map((p) => ({x: p.n_opt, y: p.d_opt})), 1, {borderWidth: 2.5}));
    }
    return ds;
  }

  // The frontier's own data (lines and vertices): what sizes its axes.
  function frontierCore(law) {
    const ds = [];
    const front = lawOf(law.fit) ? (law.frontier || []) : [];
    if (front.length) {
      ds.push(line('N_opt(C), Approach 3', front.map((p) => ({x: p.flops, y: p.n_opt})), 0));
      ds.push(line('D_opt(C), Approach 3', front.map((p) => ({x: p.flops, y: p.d_opt})), 1));
    }
    const v = law.budgets.filter((b) => b.vertex && finite(b.vertex.n));
    ds.push(points('N at parabola vertex', v.map((b) => ({x: b.flops, y: b.vertex.n})), 0, {pointStyle: 'rectRot', pointRadius: 6}));
    ds.push(points('D at parabola vertex', v.map((b) => ({x: b.flops, y: b.vertex.d})), 1, {pointStyle: 'rectRot', pointRadius: 6}));
    return ds;
  }

  // The log axes' limits: the nearest power of ten around the core data.
  function frontierLimits(core) {
    const xs = [], ys = [];
    for (const ds of core) {
      for (const p of ds.data) {
        if (finite(p.x) && p.x > 0 && finite(p.y) && p.y > 0) { xs.push(p.x); ys.push(p.y); }
      }
    }
    if (!xs.length) return null;
    const down = (v) => Math.pow(10, Math.floor(Math.log10(v) + 1e-9));
    const up = (v) => Math.pow(10, Math.ceil(Math.log10(v) - 1e-9));
    const [x0, x1] = range(xs), [y0, y1] = range(ys);
    return {x: [x0, x1], y: [down(y0), Math.max(up(y1), down(y0) * 10)]};
  }

  function frontier(law) {
    const core = frontierCore(law);
    const ds = [...core];
    const limits = frontierLimits(core);
    if (lawOf(law.fit) && law.bootstrap && limits) {
      // The bootstrap's 95% band, low edge then high edge filled down to it;
      // bounds <= 0 (a runaway resample) are left out, never drawn at 0.
      const [y0, y1] = limits.y;
      const clamp = (v) => finite(v) && v > 0 ? Math.min(Math.max(v, y0), y1) : null;
      for (const [k, name, i] of [['n_opt', 'N_opt', 0], ['d_opt', 'D_opt', 1]]) {
        const band = law.frontier.filter((p) => clamp(p[k + '_low']) !== null && clamp(p[k + '_high']) !== null);
        const edge = {borderWidth: 0.75, borderDash: [3, 3], backgroundColor: isoflop.color(i) + '2e'};
        ds.push(line(`${name} 95% band, lower edge`, band.map((p) => ({x: p.flops, y: clamp(p[k + '_low'])})), i,
                     {...edge, hideInLegend: true}));
        ds.push(line(`${name} 95% band (bootstrap)`, band.map((p) => ({x: p.flops, y: clamp(p[k + '_high'])})), i,
                     {...edge, fill: '-1'}));
      }
    }
    if (limits) {
      const cs = logspace(limits.x[0], limits.x[1], 30);
      PUBLISHED.forEach((f, k) => {
        ds.push(line(`N_opt, ${f.label}`, cs.map((c) => ({x: c, y: nOpt(f, c)})), 6 + k,
                     {borderWidth: 1.2, borderDash: k ? [8, 3, 2, 3] : [2, 3], isoflopOverlay: true}));
      });
    }
    return {ds, limits};
  }

  // Residuals (observed - predicted) of the law at each point.
  function residuals(law, key) {
    const f = lawOf(law.fit);
    if (!f) return [];
    return law.budgets.map((b, i) => points('C = ' + sci(b.flops, 3), b.points.map((p) => ({
      x: key === 'c' ? b.flops : p[key], y: p.loss - predict(f, p.n, p.d)})), i, {pointRadius: 3.5}));
  }

  function predicted(law) {
    const f = lawOf(law.fit);
    if (!f) return [];
    const ds = law.budgets.map((b, i) => points('C = ' + sci(b.flops, 3),
      b.points.map((p) => ({x: p.loss, y: predict(f, p.n, p.d)})), i, {pointRadius: 3.5}));
    const all = law.points.map((p) => p.loss);
    if (all.length) {
      const [l0, l1] = range(all);
      ds.push(line('y = x', [{x: l0, y: l0}, {x: l1, y: l1}], 7, {borderDash: [4, 3], borderWidth: 1.2}));
    }
    return ds;
  }

  // The holdout budget's points and the backtest's prediction at its best.
  function backtest(law) {
    const bt = backtestOf(law);
    if (!bt || !finite(bt.holdout_flops)) return [];
    const budget = law.budgets.find((b) => Math.abs(b.flops - bt.holdout_flops) <= 1e-6 * bt.holdout_flops);
    const ds = [];
    if (budget) ds.push(points(`observed at C = ${sci(bt.holdout_flops, 3)}`, budget.points.map((p) => ({x: p.n, y: p.loss})), 0));
    if (budget && finite(bt.predicted_loss) && finite(bt.observed_loss)) {
      const best = budget.points.reduce((a, p) => (a && a.loss <= p.loss ? a : p), null);
      if (best) {
        ds.push(points('predicted from the smaller budgets', [{x: best.n, y: bt.predicted_loss}], 3,
                       {pointStyle: 'crossRot', pointRadius: 9, borderWidth: 2.5}));
      }
    }
    return ds;
  }

  function draw(parent, law) {
    const f = frontier(law);
    const charts = [
      chart(parent, 'profiles', 'IsoFLOP profiles: loss vs N per budget', {
        xTitle: 'N (parameters)', yTitle: 'validation loss (nats/token)', yLog: false, datasets: profiles(law),
        describe: 'points per budget, fitted parabolas in log N, vertices as diamonds (hollow: outside the sampled N)'}),
      chart(parent, 'contours', 'Approach-3 surface: iso-loss contours over (N, D)', {
        xTitle: 'N (parameters)', yTitle: 'D (tokens)', datasets: contours(law),
        describe: 'dashed iso-loss curves, trial points, compute-optimal path'}),
      chart(parent, 'frontier', 'Compute-optimal frontier N_opt(C), D_opt(C)', {
        xTitle: law.flops_convention && law.flops_convention.name === 'exact' ?
          'C (FLOPs, the trials\' FLOPs/token)' : 'C (FLOPs, C = 6ND)',
        yTitle: 'N_opt (parameters) / D_opt (tokens)', datasets: f.ds,
        limits: f.limits,
        describe: 'Approach-3 lines with their bootstrap 95% bands, IsoFLOP vertices, and the published ' +
                  'Chinchilla and Epoch laws (dotted, in their own C = 6ND)'}),
      chart(parent, 'residuals-n', 'Residuals against N', {
        xTitle: 'N (parameters)', yTitle: 'observed − predicted loss', yLog: false, datasets: residuals(law, 'n'),
        describe: 'observed minus Approach-3 loss per trial'}),
      chart(parent, 'residuals-d', 'Residuals against D', {
        xTitle: 'D (tokens)', yTitle: 'observed − predicted loss', yLog: false, datasets: residuals(law, 'd'),
        describe: 'observed minus Approach-3 loss per trial'}),
      chart(parent, 'residuals-c', 'Residuals against C', {
        xTitle: 'C (FLOPs)', yTitle: 'observed − predicted loss', yLog: false, datasets: residuals(law, 'c'),
        describe: 'observed minus Approach-3 loss per trial'}),
      chart(parent, 'predicted', 'Predicted against observed loss', {
        xTitle: 'observed loss (nats/token)', yTitle: 'predicted loss (nats/token)', xLog: false, yLog: false,
        datasets: predicted(law), describe: 'Approach-3 loss against the measured loss, with y = x'}),
      chart(parent, 'backtest', 'Backtest: the largest budget predicted from the smaller ones', {
        xTitle: 'N (parameters)', yTitle: 'validation loss (nats/token)', yLog: false, datasets: backtest(law),
        describe: 'the holdout budget\'s trials and the prediction at its best one'}),
    ];
    showOnlyDrawable(charts, law);
    return charts;
  }

  // Figures with nothing to show are hidden: the diagnostics without a law,
  // the backtest without the fit's backtest.
  function showOnlyDrawable(charts, law) {
    const hasLaw = !!lawOf(law.fit), bt = backtestOf(law);
    for (const c of charts) {
      const fig = c.canvas.closest('figure');
      if (!fig) continue;
      if (c.isoflopId === 'backtest') fig.hidden = !(bt && finite(bt.holdout_flops));
      else if (c.isoflopId.startsWith('residuals') || c.isoflopId === 'predicted') fig.hidden = !hasLaw;
    }
  }

  function update(charts, law) {
    showOnlyDrawable(charts, law);
    const f = frontier(law);
    const next = {profiles: profiles(law), contours: contours(law), frontier: f.ds,
                  'residuals-n': residuals(law, 'n'), 'residuals-d': residuals(law, 'd'),
                  'residuals-c': residuals(law, 'c'), predicted: predicted(law), backtest: backtest(law)};
    for (const c of charts) {
      const id = c.isoflopId;
      if (next[id]) c.data.datasets = next[id];
      if (id === 'frontier') isoflop.setLimits(c, f.limits);
      c.update('none');
    }
  }

  // "L(N, D) = 1.69 + 406/N^0.339 + 411/D^0.285", or why there is no law.
  function lawText(f, law) {
    const why = law ? noLawReason(law) : '';
    if (!lawOf(f)) return why || 'No law yet (Approach 3 needs at least 5 succeeded trials).';
    const a = f.beta / (f.alpha + f.beta), b = f.alpha / (f.alpha + f.beta);
    const p3 = (v) => Number(v).toPrecision(3);
    return `L(N, D) = ${p3(f.e)} + ${p3(f.a)} / N^${p3(f.alpha)} + ` +
           `${p3(f.b)} / D^${p3(f.beta)}  (N = total parameters, ${f.n_points} trials` +
           `${f.provisional ? ', provisional: sweep still running' : ''}); ` +
           `N_opt ∝ C^${p3(a)}, D_opt ∝ C^${p3(b)}.`;
  }

  // Why the sweep has no usable law ('' when it has one).
  function noLawReason(law) {
    if (lawOf(law.fit)) return '';
    if (pendingOf(law)) return 'Fit pending: a fit of the trials so far is queued; the law appears when it is stored.';
    const v = verdictOf(law);
    const reasons = v && Array.isArray(v.reasons) && v.reasons.length ? v.reasons.join('; ') : '';
    const message = law.fit && typeof law.fit.message === 'string' ? law.fit.message : '';
    const n = (law.points || []).length;
    return 'No law: ' + (reasons || message ||
      (n < 5 ? `${n} succeeded trial${n === 1 ? '' : 's'}; Approach 3 needs at least 5 (and 3 budgets with 3 sizes each).`
             : 'the fit did not identify the five parameters.'));
  }

  // The backtest in words, or ''.
  function backtestText(law) {
    const bt = backtestOf(law);
    if (!bt || !finite(bt.holdout_flops)) return '';
    const pct = (v) => finite(v) ? (100 * v).toPrecision(3) + '%' : '—';
    return `Backtest: refitted without the largest budget (C = ${sci(bt.holdout_flops, 3)}), the law predicts its ` +
           `best trial's loss ${finite(bt.predicted_loss) ? bt.predicted_loss.toPrecision(4) : '—'} against ` +
           `${finite(bt.observed_loss) ? bt.observed_loss.toPrecision(4) : '—'} observed (relative error ` +
           `${pct(bt.relative_error)}); mean |relative error| over its ${bt.points} trials ` +
           `${pct(bt.mean_abs_relative_error)}.`;
  }

  return {draw, update, lawText, noLawReason, backtestText, verdictOf, backtestOf, pendingOf, lawOf, PUBLISHED, short};
})();

// The scaling-law charts, shared by the law page and the printable report:
// IsoFLOP profiles, iso-loss contours of the fitted surface over (N, D), and
// the compute-optimal frontier.
'use strict';
const lawplots = (() => {
  const {chart, points, line, sci} = isoflop;
  const logspace = (lo, hi, n) => Array.from({length: n}, (_, i) => lo * Math.pow(hi / lo, i / (n - 1)));
  const range = (vals) => [Math.min(...vals), Math.max(...vals)];

  function profiles(law) {
    const ds = [];
    law.budgets.forEach((b, i) => {
      const label = 'C = ' + sci(b.flops, 2);
      ds.push(points(label, b.points.map((p) => ({x: p.n, y: p.loss})), i));
      if (b.parabola) {
        const p = b.parabola, pad = 0.15 * (p.ln_n_max - p.ln_n_min);
        const xs = logspace(Math.exp(p.ln_n_min - pad), Math.exp(p.ln_n_max + pad), 40);
        ds.push(line(label + ' parabola', xs.map((n) => {
          const x = Math.log(n);
          return {x: n, y: p.c0 + p.c1 * x + p.c2 * x * x};
        }), i, {hideInLegend: true, borderWidth: 1.5}));
      }
      if (b.vertex) {
        ds.push(points(label + ' vertex', [{x: b.vertex.n, y: b.vertex.loss}], i,
                       {pointStyle: 'star', pointRadius: 9, borderWidth: 2, hideInLegend: true}));
      }
    });
    return ds;
  }

  // Iso-loss curves of L(N, D) = E + A/N^alpha + B/D^beta: for each level,
  // D(N) = (B / (L - E - A/N^alpha))^(1/beta) where that is positive.
  function contours(law) {
    const ds = [];
    const f = law.fit;
    const [n0, n1] = range(law.points.map((p) => p.n));
    const [d0, d1] = range(law.points.map((p) => p.d));
    const [l0, l1] = range(law.points.map((p) => p.loss));
    ds.push(points('trials', law.points.map((p) => ({x: p.n, y: p.d})), 0, {pointRadius: 4}));
    if (f) {
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
      const front = law.frontier.filter((p) => p.n_opt !== null && p.n_opt >= n0 / 10 && p.n_opt <= n1 * 10);
      ds.push(line('compute-optimal (N_opt, D_opt)', front.map((p) => ({x: p.n_opt, y: p.d_opt})), 1, {borderWidth: 2.5}));
    }
    return ds;
  }

  function frontier(law) {
    const ds = [];
    if (law.fit) {
      ds.push(line('N_opt(C), Approach 3', law.frontier.map((p) => ({x: p.flops, y: p.n_opt})), 0));
      ds.push(line('D_opt(C), Approach 3', law.frontier.map((p) => ({x: p.flops, y: p.d_opt})), 1));
      if (law.bootstrap) {  // the bootstrap's 95% band: low edge, then high edge filled down to it
        for (const [k, name, i] of [['n_opt', 'N_opt', 0], ['d_opt', 'D_opt', 1]]) {
          const band = law.frontier.filter((p) => p[k + '_low'] != null && p[k + '_high'] != null);
          const edge = {borderWidth: 0.75, borderDash: [3, 3], backgroundColor: isoflop.color(i) + '2e'};
          ds.push(line(`${name} 95% band low`, band.map((p) => ({x: p.flops, y: p[k + '_low']})), i, edge));
          ds.push(line(`${name} 95% band (bootstrap)`, band.map((p) => ({x: p.flops, y: p[k + '_high']})), i,
                       {...edge, fill: '-1'}));
        }
      }
    }
    const v = law.budgets.filter((b) => b.vertex);
    ds.push(points('N at parabola vertex', v.map((b) => ({x: b.flops, y: b.vertex.n})), 0, {pointStyle: 'rectRot', pointRadius: 6}));
    ds.push(points('D at parabola vertex', v.map((b) => ({x: b.flops, y: b.vertex.d})), 1, {pointStyle: 'rectRot', pointRadius: 6}));
    return ds;
  }

  function draw(parent, law) {
    return [
      chart(parent, 'profiles', 'IsoFLOP profiles: loss vs N per budget', {
        xTitle: 'N (parameters)', yTitle: 'validation loss (nats/token)', yLog: false, datasets: profiles(law),
        describe: 'points per budget, fitted parabolas in log N, vertices as stars'}),
      chart(parent, 'contours', 'Approach-3 surface: iso-loss contours over (N, D)', {
        xTitle: 'N (parameters)', yTitle: 'D (tokens)', datasets: contours(law),
        describe: 'dashed iso-loss curves, trial points, compute-optimal path'}),
      chart(parent, 'frontier', 'Compute-optimal frontier N_opt(C), D_opt(C)', {
        xTitle: law.flops_convention && law.flops_convention.name === 'exact' ?
          'C (FLOPs, the trials\' FLOPs/token)' : 'C (FLOPs, C = 6ND)', yTitle: 'N_opt (parameters) / D_opt (tokens)', datasets: frontier(law),
        describe: 'Approach-3 closed form lines with their bootstrap 95% bands, and IsoFLOP vertices'}),
    ];
  }

  function update(charts, law) {
    const [a, b, c] = charts;
    a.data.datasets = profiles(law); b.data.datasets = contours(law); c.data.datasets = frontier(law);
    for (const x of charts) x.update('none');
  }

  // "L(N, D) = 1.69 + 406.4/N^0.3392 + 410.7/D^0.2849", full precision in the title.
  function lawText(f) {
    if (!f) return 'No fit yet (Approach 3 needs at least 5 succeeded trials).';
    const a = f.beta / (f.alpha + f.beta), b = f.alpha / (f.alpha + f.beta);
    return `L(N, D) = ${f.e.toPrecision(5)} + ${f.a.toPrecision(5)} / N^${f.alpha.toPrecision(4)} + ` +
           `${f.b.toPrecision(5)} / D^${f.beta.toPrecision(4)}  (N = total parameters, ${f.n_points} trials` +
           `${f.provisional ? ', provisional: sweep still running' : ''}); ` +
           `N_opt ∝ C^${a.toPrecision(4)}, D_opt ∝ C^${b.toPrecision(4)}.`;
  }

  return {draw, update, lawText};
})();

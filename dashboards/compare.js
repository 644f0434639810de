// Compare page: two or more sweeps (datasets, architectures, recipes) on one
// IsoFLOP-profile plot and one compute-optimal frontier, their laws side by
// side with 95% intervals, and the config fields in which they differ.
// compare.html?id=A&id=B; the form picks sweeps from /api/v1/sweeps.
'use strict';
(() => {
  const {api, el, sci, short, num, chart, chartReady, color, nav, fail} = isoflop;
  nav('compare');
  const main = document.getElementById('main');
  const ids = new URLSearchParams(location.search).getAll('id').flatMap((v) => v.split(',')).filter(Boolean);
  const STYLES = ['circle', 'triangle', 'rect', 'rectRot', 'star', 'crossRot'];
  const DASHES = [[], [6, 3], [2, 3], [8, 3, 2, 3]];
  const finite = (v) => typeof v === 'number' && isFinite(v);

  // The sweep's hue, lighter for smaller budgets (j of m).
  function shade(k, j, m) {
    const base = color(k);
    const f = m > 1 ? 0.5 * (1 - j / (m - 1)) : 0;
    return '#' + [1, 3, 5].map((i) => {
      const v = parseInt(base.slice(i, i + 2), 16);
      return Math.round(v + (255 - v) * f).toString(16).padStart(2, '0');
    }).join('');
  }
  const legendOnly = (label, k, extra = {}) => ({label, data: [], borderColor: color(k), backgroundColor: color(k),
                                                 showLine: true, pointRadius: 0, isoflopLegend: true, ...extra});

  // Every budget's points and parabola, per sweep; one legend entry per sweep.
  function profiles(items) {
    const ds = [];
    items.forEach(({sweep, law}, k) => {
      ds.push(legendOnly(`${sweep.name} (${STYLES[k % STYLES.length]})`, k,
                         {pointStyle: STYLES[k % STYLES.length], pointRadius: 5, showLine: false}));
      const m = law.budgets.length;
      law.budgets.forEach((b, j) => {
        const col = shade(k, j, m);
        ds.push({label: `${sweep.name}: C = ${sci(b.flops, 3)}`, data: b.points.map((p) => ({x: p.n, y: p.loss})),
                 showLine: false, pointRadius: 4.5, pointStyle: STYLES[k % STYLES.length], borderColor: col,
                 backgroundColor: col, hideInLegend: true, sweep: sweep.id});
        if (b.parabola) {
          const p = b.parabola, pad = 0.15 * (p.ln_n_max - p.ln_n_min);
          const xs = Array.from({length: 30}, (_, i) => Math.exp(p.ln_n_min - pad + (p.ln_n_max - p.ln_n_min + 2 * pad) * i / 29));
          ds.push({label: `${sweep.name}: C = ${sci(b.flops, 3)} parabola`,
                   data: xs.map((n) => ({x: n, y: p.c0 + p.c1 * Math.log(n) + p.c2 * Math.log(n) ** 2})),
                   showLine: true, pointRadius: 0, borderWidth: 1.5, borderColor: col, backgroundColor: col,
                   borderDash: DASHES[k % DASHES.length], hideInLegend: true, sweep: sweep.id, isoflopFit: true});
        }
      });
    });
    return ds;
  }

  // N_opt(C) (solid) and D_opt(C) (dashed) of each sweep's law, with its
  // parabola vertices.
  function frontier(items) {
    const ds = [];
    items.forEach(({sweep, law}, k) => {
      ds.push(legendOnly(sweep.name, k));
      const front = lawplots.lawOf(law.fit) ? (law.frontier || []) : [];
      ds.push({label: `${sweep.name}: N_opt(C)`, data: front.filter((p) => finite(p.n_opt)).map((p) => ({x: p.flops, y: p.n_opt})),
               showLine: true, pointRadius: 0, borderWidth: 2, borderColor: color(k), backgroundColor: color(k),
               hideInLegend: true, sweep: sweep.id});
      ds.push({label: `${sweep.name}: D_opt(C)`, data: front.filter((p) => finite(p.d_opt)).map((p) => ({x: p.flops, y: p.d_opt})),
               showLine: true, pointRadius: 0, borderWidth: 2, borderDash: [6, 3], borderColor: color(k),
               backgroundColor: color(k), hideInLegend: true, sweep: sweep.id});
      const v = law.budgets.filter((b) => b.vertex && finite(b.vertex.n));
      ds.push({label: `${sweep.name}: vertices`, data: v.flatMap((b) => [{x: b.flops, y: b.vertex.n}, {x: b.flops, y: b.vertex.d}]),
               showLine: false, pointRadius: 5, pointStyle: STYLES[k % STYLES.length], borderColor: color(k),
               backgroundColor: color(k), hideInLegend: true, sweep: sweep.id});
    });
    ds.push({label: 'N_opt solid, D_opt dashed', data: [], borderColor: '#4d4d4d', backgroundColor: '#4d4d4d',
             borderDash: [6, 3], showLine: true, pointRadius: 0, isoflopLegend: true});
    return ds;
  }

  // y limits of a linear axis fitted to the points (the parabolas may run off).
  function fitted(ds) {
    const ys = ds.filter((d) => !d.isoflopLegend && !d.isoflopFit).flatMap((d) => d.data.map((p) => p.y)).filter(finite);
    if (!ys.length) return null;
    const lo = Math.min(...ys), hi = Math.max(...ys), pad = Math.max(0.06 * (hi - lo), 0.01);
    // Ends on round values (a tenth of the range's decade), so the axis's
    // end ticks read like the others.
    const unit = Math.pow(10, Math.floor(Math.log10(hi - lo + 2 * pad))) / 10;
    const xs = ds.filter((d) => !d.isoflopLegend).flatMap((d) => d.data.map((p) => p.x)).filter((x) => finite(x) && x > 0);
    return {x: [Math.min(...xs), Math.max(...xs)],
            y: [Math.floor((lo - pad) / unit) * unit, Math.ceil((hi + pad) / unit) * unit]};
  }

  function intervalText(law, key, value) {
    const ci = law.bootstrap && law.bootstrap.ci95 && law.bootstrap.ci95[key];
    return `${num(value)} ${ci ? `[${num(ci[0])}, ${num(ci[1])}]` : '(no bootstrap yet)'}`;
  }

  function laws(items) {
    document.querySelector('#laws tbody').replaceChildren(...items.map(({sweep, law}) => {
      const f = lawplots.lawOf(law.fit), v = lawplots.verdictOf(law);
      return el('tr', {'data-sweep': sweep.id},
        el('th', {scope: 'row'}, el('a', {href: '/law.html?id=' + encodeURIComponent(sweep.id)}, sweep.name),
           el('div', {class: 'muted trial-id', text: sweep.id})),
        el('td', {text: f ? lawplots.lawText(law.fit, law).split(' (')[0] : lawplots.noLawReason(law), style: 'white-space:normal'}),
        el('td', {text: f ? intervalText(law, 'alpha', f.alpha) : '—'}),
        el('td', {text: f ? intervalText(law, 'beta', f.beta) : '—'}),
        el('td', {text: f ? intervalText(law, 'a', f.beta / (f.alpha + f.beta)) : '—'}),
        el('td', {text: v ? v.level : '—'}));
    }));
  }

  // Leaf paths of a JSON object: {"a": {"b": 1}} -> {"a.b": "1"}.
  function flatten(v, prefix = '', out = {}) {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
    } else {
      out[prefix] = Array.isArray(v) ? v.map((x) => typeof x === 'object' ? JSON.stringify(x) : x).join(', ') : String(v);
    }
    return out;
  }
  function diff(items) {
    const flat = items.map(({sweep}) => flatten(sweep.config || {}));
    const keys = [...new Set(flat.flatMap(Object.keys))].sort()
        .filter((k) => new Set(flat.map((f) => f[k] === undefined ? '(unset)' : f[k])).size > 1);
    document.querySelector('#diff thead tr').replaceChildren(el('th', {scope: 'col', text: 'config field'}),
      ...items.map(({sweep}) => el('th', {scope: 'col', text: sweep.name})));
    document.querySelector('#diff tbody').replaceChildren(...(keys.length ? keys.map((k) => el('tr', {'data-field': k},
      el('th', {scope: 'row', text: k}), ...flat.map((f) => el('td', {text: f[k] === undefined ? '(unset)' : f[k],
                                                                        style: 'white-space:normal'}))))
      : [el('tr', {}, el('td', {colspan: items.length + 1, text: 'The configs are the same.'}))]));
  }

  async function picker() {
    const {sweeps} = await api('sweeps');
    const chosen = new Set(ids);
    document.getElementById('pick-list').replaceChildren(...sweeps.map((s) => el('label', {for: 'pick-' + s.id},
      el('input', {type: 'checkbox', id: 'pick-' + s.id, name: 'id', value: s.id, checked: chosen.has(s.id)}),
      ` ${s.name} `, el('span', {class: 'muted', text: s.id.slice(0, 10)}))));
    return sweeps;
  }

  async function load() {
    await picker();
    const note = document.getElementById('compare-note');
    if (ids.length < 2) {
      note.hidden = false;
      note.textContent = 'Pick two or more sweeps to compare.';
      window.isoflopReady = true;
      return;
    }
    const items = await Promise.all(ids.map(async (id) => {
      const enc = encodeURIComponent(id);
      const [sweep, law] = await Promise.all([api(`sweeps/${enc}`), api(`sweeps/${enc}/law`)]);
      return {sweep, law};
    }));
    document.title = `${items.map((i) => i.sweep.name).join(' vs ')} · isoflop`;
    laws(items);
    diff(items);
    await chartReady;
    const parent = document.getElementById('charts');
    const p = profiles(items), f = frontier(items);
    const pc = chart(parent, 'compare-profiles', 'IsoFLOP profiles of every sweep: loss vs N', {
      xTitle: 'N (parameters)', yTitle: 'validation loss (nats/token)', yLog: false, datasets: p, limits: fitted(p),
      describe: 'one colour and marker per sweep, lighter for smaller budgets; fitted parabolas in log N'});
    pc.options.scales.y.ticks.includeBounds = false;  // no odd end labels beside the round ones
    pc.update('none');
    chart(parent, 'compare-frontier', 'Compute-optimal frontier of every sweep', {
      xTitle: 'C (FLOPs)', yTitle: 'N_opt (parameters) / D_opt (tokens)', datasets: f,
      describe: 'each sweep\'s Approach-3 N_opt(C) and D_opt(C) with its parabola vertices'});
    window.isoflopCompare = items.map(({sweep}) => sweep.id);
    window.isoflopReady = true;
  }
  load().catch((e) => fail(main, e));
})();

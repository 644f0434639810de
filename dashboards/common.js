// isoflop dashboards: shared helpers (API calls, live events, charts, export).
// No build step: plain browser JavaScript, Chart.js from vendor/ (Debian's libjs-chart.js).
'use strict';

const isoflop = (() => {
  const charts = {};  // id -> Chart, read by the browser test
  window.isoflopCharts = charts;
  // Resolves once Chart.js has run: a page may load it after its own script
  // (deferred scripts all run before DOMContentLoaded) to fetch sooner.
  const chartReady = new Promise((resolve) => {
    if (window.Chart || document.readyState !== 'loading') resolve();
    else document.addEventListener('DOMContentLoaded', () => resolve(), {once: true});
  });

  // GET /api/v1/PATH as JSON. A 401 sends the viewer to the login page.
  async function api(path) {
    const res = await fetch('/api/v1/' + path, {credentials: 'same-origin'});
    if (res.status === 401) {
      location.href = '/login.html?next=' + encodeURIComponent(location.pathname + location.search);
      throw new Error('not logged in');
    }
    const body = await res.json();
    if (!res.ok) throw new Error(body.error || res.statusText);
    return body;
  }

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  const param = (name) => new URLSearchParams(location.search).get(name);

  // 1.23e+15 -> "1.23e15"; 123456789 -> "123M".
  function sci(v, digits = 3) {
    if (v === null || v === undefined || !isFinite(v)) return '—';
    return Number(v).toExponential(digits - 1).replace('e+', 'e');
  }
  function short(v) {
    if (v === null || v === undefined || !isFinite(v)) return '—';
    const a = Math.abs(v);
    for (const [s, f] of [['T', 1e12], ['B', 1e9], ['M', 1e6], ['K', 1e3]]) {
      if (a >= f) return (v / f).toPrecision(3) + s;
    }
    return Number(v).toPrecision(3);
  }
  function fixed(v, d = 4) {
    return v === null || v === undefined || !isFinite(v) ? '—' : Number(v).toFixed(d);
  }
  function ago(ms) {
    if (!ms) return '—';
    const s = Math.max(0, (Date.now() - ms) / 1000);
    if (s < 90) return s.toFixed(0) + ' s ago';
    if (s < 5400) return (s / 60).toFixed(0) + ' min ago';
    return (s / 3600).toFixed(1) + ' h ago';
  }
  const stateName = (s) => (s || '').replace('SWEEP_', '').toLowerCase();

  // Debounce: at most one call per `ms`, trailing.
  function later(fn, ms) {
    let timer = null;
    return () => {
      if (timer) return;
      timer = setTimeout(() => { timer = null; fn(); }, ms);
    };
  }

  // Server-Sent Events with a status line; EventSource resends Last-Event-ID
  // itself after a reconnect, and the server replays what was missed.
  function live(query, handlers, statusEl) {
    const src = new EventSource('/api/v1/events' + (query ? '?' + query : ''));
    const show = (state, text) => {
      if (!statusEl) return;
      statusEl.dataset.state = state;
      statusEl.textContent = text;
    };
    src.onopen = () => show('open', 'live');
    src.onerror = () => show('closed', 'reconnecting…');
    for (const [type, fn] of Object.entries(handlers)) {
      src.addEventListener(type, (ev) => fn(JSON.parse(ev.data), ev));
    }
    // A browser keeps at most 6 connections to one host over HTTP/1.1: a
    // page left for another (kept in the back-forward cache) must not hold
    // its stream open, or the 7th page waits for a connection. Coming back
    // from that cache, the page reloads (its data is stale anyway).
    window.addEventListener('pagehide', () => src.close());
    window.addEventListener('pageshow', (e) => { if (e.persisted) location.reload(); });
    window.isoflopEvents = src;
    return src;
  }

  // ---------------------------------------------------------------- charts
  const palette = ['#0b4f9c', '#c2410c', '#15803d', '#7e22ce', '#b91c1c', '#0e7490', '#a16207',
                   '#be185d', '#4d7c0f', '#1d4ed8', '#9a3412', '#047857'];
  const color = (i) => palette[i % palette.length];

  // Opaque white behind the chart, so a PNG export reads on any background.
  const whiteBackground = {
    id: 'whiteBackground',
    beforeDraw(chart) {
      const {ctx, width, height} = chart;
      ctx.save();
      ctx.fillStyle = '#ffffff';
      ctx.fillRect(0, 0, width, height);
      ctx.restore();
    },
  };

  // Ticks a log axis can label at any range: powers of ten over more than
  // three decades (every k-th when there are many), 1-2-5 multiples over one
  // to three, and evenly spaced round values (1, 2, 2.5 or 5 times a power of
  // ten) inside one decade, where a log axis is all but linear.
  function logTicks(min, max) {
    if (!(min > 0) || !(max > min)) return {values: [], step: 0};
    const decades = Math.log10(max / min);
    const values = [];
    const round = (v) => Number(v.toPrecision(12));
    if (decades < 1) {
      const span = max - min, unit = Math.pow(10, Math.floor(Math.log10(span / 5)));
      const step = [1, 2, 2.5, 5, 10].map((m) => m * unit).find((s) => span / s <= 6);
      for (let k = Math.ceil(min / step - 1e-9); k * step <= max * (1 + 1e-12); ++k) values.push(round(k * step));
      return {values, step};
    }
    const every = decades > 3 ? Math.max(1, Math.ceil(decades / 8)) : 1;
    const mults = decades > 3 ? [1] : [1, 2, 5];
    for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); ++e) {
      if (((e % every) + every) % every !== 0) continue;
      for (const m of mults) {
        const v = round(m * Math.pow(10, e));
        if (v >= min * (1 - 1e-12) && v <= max * (1 + 1e-12)) values.push(v);
      }
    }
    return {values, step: 0};
  }

  // A tick label: plain digits from 0.001 to 10^4 ("0.005", "2.5", "200"),
  // else mantissa and exponent ("2e15", "1.5e-4"); `step` (linear ticks) sets
  // the digits so that neighbouring labels differ. Never more than 4
  // significant digits (no "3.6000000000000005").
  function tickLabel(v, step) {
    if (!isFinite(v)) return '';
    const a = Math.abs(v);
    if (a === 0 || (step > 0 && a < 1e-9 * step)) return '0';
    if (a >= 0.001 && a < 1e4) {
      const decimals = step > 0 ? Math.max(0, Math.ceil(-Math.log10(step) - 1e-9) + (step / Math.pow(10, Math.floor(Math.log10(step))) % 1 ? 1 : 0)) : 6;
      return String(Number(Number(v.toFixed(Math.min(decimals, 12))).toPrecision(4)));
    }
    const exp = Math.floor(Math.log10(a));
    const digits = step > 0 ? Math.max(1, exp - Math.floor(Math.log10(step)) + 2) : 3;
    return `${Number((v / Math.pow(10, exp)).toPrecision(Math.min(digits, 4)))}e${exp}`;
  }

  function axis(title, log) {
    return {
      type: log ? 'logarithmic' : 'linear',
      title: {display: true, text: title, color: '#1a1a1a'},
      ticks: {color: '#1a1a1a', maxTicksLimit: 8,
              callback: log ? function(v) { return tickLabel(v, this.isoflopStep || 0); }
                            : function(v, i, ticks) {
                              const step = ticks.length > 1 ? Math.abs(ticks[1].value - ticks[0].value) : 0;
                              return tickLabel(v, step);
                            }},
      afterBuildTicks: log ? (scale) => {
        const {values, step} = logTicks(scale.min, scale.max);
        if (values.length < 2) return;  // keep Chart.js's own
        scale.isoflopStep = step;
        scale.ticks = values.map((value) => ({value}));
      } : undefined,
      grid: {color: '#e3e3e3'},
    };
  }

  // A figure with a canvas chart and SVG / PNG / CSV buttons, appended to
  // `parent`. `xTitle`/`yTitle` name the axes (units included).
  // `limits` ({x: [min, max], y: [min, max]} or null) fixes the axes to the
  // chart's own data: datasets outside them (bands, overlays) are clipped.
  function chart(parent, id, title, {xTitle, yTitle, xLog = true, yLog = true, legend = true,
                                     datasets = [], describe = '', limits = null}) {
    const canvas = el('canvas', {role: 'img', 'aria-label': title + (describe ? ': ' + describe : '')});
    const fig = el('figure', {class: 'chart', id: 'fig-' + id});
    const download = (kind) => () => exportChart(charts[id], id, kind);
    fig.append(el('figcaption', {},
        el('span', {class: 'title', text: title}),
        el('button', {type: 'button', onclick: download('svg'), 'aria-label': title + ': download SVG'}, 'SVG'),
        el('button', {type: 'button', onclick: download('png'), 'aria-label': title + ': download PNG'}, 'PNG'),
        el('button', {type: 'button', onclick: download('csv'), 'aria-label': title + ': download data as CSV'}, 'CSV')),
      el('div', {class: 'canvas-box'}, canvas));
    parent.append(fig);
    const c = new Chart(canvas, {
      type: 'scatter',
      data: {datasets},
      plugins: [whiteBackground],
      options: {
        animation: false, parsing: false, normalized: true, responsive: true, maintainAspectRatio: false,
        scales: {x: axis(xTitle, xLog), y: axis(yTitle, yLog)},
        plugins: {legend: {display: legend, labels: {color: '#1a1a1a', boxWidth: 12,
                                                     filter: (item, data) => !data.datasets[item.datasetIndex].hideInLegend}},
                  tooltip: {callbacks: {label: (ctx) => `${ctx.dataset.label}: (${sci(ctx.parsed.x)}, ${sci(ctx.parsed.y, 4)})`}}},
        elements: {point: {radius: 3}, line: {borderWidth: 2}},
      },
    });
    c.isoflopTitle = title;
    c.isoflopId = id;
    setLimits(c, limits);
    c.isoflopAxes = [xTitle, yTitle];
    charts[id] = c;
    return c;
  }

  function setLimits(c, limits) {
    for (const k of ['x', 'y']) {
      const s = c.options.scales[k];
      s.min = limits ? limits[k][0] : undefined;
      s.max = limits ? limits[k][1] : undefined;
    }
    if (limits) c.update('none');
  }

  // 3 significant figures with K/M/B/T for counts ("22.4M"), mantissa and
  // exponent past 10^15 ("1.23e21"), plain below 1000 ("0.0451", "2.31").
  function num(v) {
    if (v === null || v === undefined || !isFinite(v)) return '—';
    if (v === 0) return '0';
    const a = Math.abs(v);
    if (a >= 1e15 || a < 1e-3) return sci(v, 3);
    if (a >= 1e3) return short(v);
    return String(Number(Number(v).toPrecision(3)));
  }

  // Dataset helpers: points only, or a line without markers.
  const points = (label, data, i, extra = {}) => ({label, data, backgroundColor: color(i), borderColor: color(i),
                                                     showLine: false, pointRadius: 4, ...extra});
  const line = (label, data, i, extra = {}) => ({label, data, borderColor: color(i), backgroundColor: color(i),
                                                   showLine: true, pointRadius: 0, borderWidth: 2, ...extra});

  function save(name, blob) {
    const a = el('a', {href: URL.createObjectURL(blob), download: name});
    document.body.append(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  function chartCsv(c) {
    const rows = [['series', c.isoflopAxes[0], c.isoflopAxes[1]]];
    for (const ds of c.data.datasets) {
      for (const p of ds.data) rows.push([ds.label, p.x, p.y]);
    }
    return rows.map((r) => r.map((v) => /[",\n]/.test(String(v)) ? '"' + String(v).replace(/"/g, '""') + '"' : v)
                            .join(',')).join('\n') + '\n';
  }

  // A colour option may be one colour or one per point (the first stands for all).
  const first = (v) => Array.isArray(v) ? v[0] : v;
  const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

  // The chart as a standalone SVG drawn from Chart.js's own scales: axes,
  // ticks, series (lines and markers), legend, title. Vector, for papers.
  // The canvas's band above the plot area (Chart.js's legend, drawn here
  // in a column right of the plot) is cropped, and the SVG's size keeps the chart's aspect
  // ratio: no letterbox bands above or below.
  function chartSvg(c, width = 720) {
    const W = c.width, H = c.height, area = c.chartArea, sx = c.scales.x, sy = c.scales.y;
    const legend = c.data.datasets.filter((ds, i) => c.isDatasetVisible(i) && !ds.hideInLegend).slice(0, 14);
    const longest = Math.max(0, ...legend.map((ds) => Math.min(30, String(ds.label).length)));
    const LW = legend.length ? 28 + Math.ceil(6.2 * longest) : 0;  // the legend column's width
    const top = Math.max(0, Math.floor(area.top) - 8), height = Math.round(width * (H - top) / (W + LW));
    const out = [`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 ${top} ${W + LW} ${H - top}" width="${width}" height="${height}" ` +
                 `font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11">`,
                 `<title>${esc(c.isoflopTitle)}</title>`,
                 `<rect x="0" y="${top}" width="${W + LW}" height="${H - top}" fill="#fff"/>`];
    for (const t of sx.ticks) {
      const x = sx.getPixelForValue(t.value);
      out.push(`<line x1="${x}" y1="${area.top}" x2="${x}" y2="${area.bottom}" stroke="#e3e3e3"/>`);
      if (t.label) out.push(`<text x="${x}" y="${area.bottom + 14}" text-anchor="middle">${esc(t.label)}</text>`);
    }
    for (const t of sy.ticks) {
      const y = sy.getPixelForValue(t.value);
      out.push(`<line x1="${area.left}" y1="${y}" x2="${area.right}" y2="${y}" stroke="#e3e3e3"/>`);
      if (t.label) out.push(`<text x="${area.left - 4}" y="${y + 4}" text-anchor="end">${esc(t.label)}</text>`);
    }
    out.push(`<rect x="${area.left}" y="${area.top}" width="${area.right - area.left}" height="${area.bottom - area.top}" ` +
             `fill="none" stroke="#333"/>`);
    out.push(`<text x="${(area.left + area.right) / 2}" y="${H - 4}" text-anchor="middle">${esc(c.isoflopAxes[0])}</text>`);
    out.push(`<text transform="translate(12 ${(area.top + area.bottom) / 2}) rotate(-90)" text-anchor="middle">` +
             `${esc(c.isoflopAxes[1])}</text>`);
    out.push(`<clipPath id="area"><rect x="${area.left}" y="${area.top}" width="${area.right - area.left}" ` +
             `height="${area.bottom - area.top}"/></clipPath><g clip-path="url(#area)">`);
    const visible = c.data.datasets.filter((ds, i) => c.isDatasetVisible(i));
    for (const ds of visible) {
      const px = ds.data.filter((p) => p.y !== null && isFinite(p.y) && isFinite(p.x) && p.x > 0 &&
                                       (sy.type !== 'logarithmic' || p.y > 0))
                        .map((p) => [sx.getPixelForValue(p.x).toFixed(1), sy.getPixelForValue(p.y).toFixed(1)]);
      const stroke = first(ds.borderColor) || '#000';
      if (ds.showLine && px.length > 1) {
        out.push(`<polyline fill="none" stroke="${stroke}" stroke-width="${ds.borderWidth || 2}"` +
                 `${ds.borderDash ? ` stroke-dasharray="${ds.borderDash.join(' ')}"` : ''} points="${px.map((p) => p.join(',')).join(' ')}"/>`);
      }
      const r = ds.pointRadius === undefined ? 3 : ds.pointRadius;
      if (r > 0) for (const [x, y] of px) out.push(`<circle cx="${x}" cy="${y}" r="${r}" fill="${first(ds.backgroundColor) || stroke}"/>`);
    }
    out.push('</g>');
    // The legend beside the plot, never over its data: a column right of the
    // plot area that widens the drawing past the canvas's width.
    legend.forEach((ds, k) => {
      const ly = area.top + 12 + 14 * k;
      out.push(`<rect x="${W + 6}" y="${ly - 8}" width="10" height="10" fill="${first(ds.borderColor) || '#000'}"/>`);
      out.push(`<text x="${W + 20}" y="${ly + 1}">${esc(ds.label).slice(0, 30)}</text>`);
    });
    out.push('</svg>');
    return out.join('\n');
  }

  function exportChart(c, id, kind) {
    if (kind === 'csv') save(id + '.csv', new Blob([chartCsv(c)], {type: 'text/csv'}));
    else if (kind === 'svg') save(id + '.svg', new Blob([chartSvg(c)], {type: 'image/svg+xml'}));
    else fetch(c.toBase64Image('image/png')).then((r) => r.blob()).then((b) => save(id + '.png', b));
  }

  // Top navigation; `current` is the page's key.
  function nav(current, sweepId) {
    const links = [['sweeps', '/', 'Sweeps'], ['workers', '/workers.html', 'Workers'],
                   ['compare', '/compare.html' + (sweepId ? '?id=' + encodeURIComponent(sweepId) : ''), 'Compare']];
    if (sweepId) {
      const q = '?id=' + encodeURIComponent(sweepId);
      links.push(['sweep', '/sweep.html' + q, 'Sweep'], ['law', '/law.html' + q, 'Scaling law'],
                 ['report', '/report.html' + q, 'Report']);
    }
    const header = el('header', {class: 'top'}, el('a', {class: 'brand', href: '/'}, 'isoflop'),
                      el('nav', {'aria-label': 'pages'},
                         ...links.map(([k, href, text]) => el('a', {href, 'aria-current': k === current ? 'page' : null,
                                                                     style: 'margin-right:1rem'}, text))));
    document.body.prepend(header);
  }

  function fail(where, e) {
    where.append(el('p', {class: 'error', role: 'alert'}, String(e.message || e)));
  }

  return {api, el, param, sci, short, num, setLimits, fixed, ago, stateName, later, live, chart, points, line, color,
          chartReady, logTicks, tickLabel, chartSvg, chartCsv, exportChart, nav, fail, charts};
})();

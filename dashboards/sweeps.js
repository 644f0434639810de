// Sweeps page: one row per sweep, refreshed when the live stream reports a change.
'use strict';
(() => {
  const {api, el, fixed, later, live, nav, fail} = isoflop;
  nav('sweeps');
  const body = document.querySelector('#sweeps tbody');

  async function load() {
    try {
      const {sweeps} = await api('sweeps');
      body.replaceChildren(...sweeps.map((s) => {
        const q = '?id=' + encodeURIComponent(s.id);
        const counts = Object.entries(s.counts).map(([k, v]) => `${k.toLowerCase()} ${v}`).join(', ');
        return el('tr', {'data-sweep': s.id},
          el('td', {}, el('a', {href: '/sweep.html' + q}, s.name), el('div', {class: 'muted', text: s.id})),
          // paused: as the sweep page and the CLI's PAUSED (cli/output.cc)
          el('td', {class: 'state-' + s.state, text: s.paused && s.state === 'SWEEP_RUNNING' ? 'paused'
            : s.state.replace('SWEEP_', '').toLowerCase()}),
          el('td', {}, el('progress', {max: s.n_trials || 1, value: s.ended, 'aria-label': `${s.name} progress`}),
             ` ${s.ended}/${s.n_trials}`),
          el('td', {text: counts}),
          el('td', {class: 'num', text: fixed(s.best_val_loss)}),
          el('td', {text: new Date(s.created_unix_ms).toLocaleString()}),
          el('td', {}, el('a', {href: '/law.html' + q}, 'law'), ' · ', el('a', {href: '/report.html' + q}, 'report')));
      }));
      if (!sweeps.length) body.append(el('tr', {}, el('td', {colspan: 7, text: 'No sweeps yet: isoflop sweep submit CONFIG'})));
      window.isoflopReady = true;
    } catch (e) {
      fail(document.getElementById('main'), e);
    }
  }
  const reload = later(load, 1000);
  load();
  live('', {sweep: reload, trial: reload, reset: load}, document.getElementById('live'));
})();

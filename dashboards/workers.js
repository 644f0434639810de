// Workers page: hosts, state (live, draining, lost: the CLI's words), GPUs,
// current trials, last heartbeat (live), drained.
'use strict';
(() => {
  const {api, el, ago, later, live, nav, fail} = isoflop;
  nav('workers');
  const body = document.querySelector('#workers tbody');
  const beats = new Map();  // worker id -> last heartbeat ms

  function render(workers) {
    body.replaceChildren(...workers.map((w) => {
      beats.set(w.id, w.last_heartbeat_unix_ms);
      // `state` from the coordinator's view (GET /api/v1/workers); a lost
      // worker that was drained is "lost, draining", as in the CLI.
      const state = w.state === 'lost' && w.draining ? 'lost, draining' : (w.state || (w.draining ? 'draining' : 'live'));
      return el('tr', {'data-worker': w.id, 'data-state': w.state || ''},
        el('td', {}, w.id),
        el('td', {class: 'worker-state state-' + (w.state === 'lost' ? 'FAILED' : w.state === 'live' ? 'SUCCEEDED' : 'RUNNING'),
                  text: state}),
        el('td', {text: w.hostname}), el('td', {class: 'num', text: w.gpus}),
        el('td', {class: 'num', text: w.cpu_slots}),
        el('td', {}, w.trials.length ? w.trials.flatMap((t, i) => [i ? ', ' : '',
          el('a', {href: '/trial.html?id=' + encodeURIComponent(t.id) + '&sweep=' + encodeURIComponent(t.sweep),
                   title: t.id}, t.id)]) : (w.state === 'lost' ? '—' : 'idle')),
        el('td', {class: 'beat', 'data-ms': w.last_heartbeat_unix_ms, title: new Date(w.last_heartbeat_unix_ms).toISOString(),
                  text: ago(w.last_heartbeat_unix_ms)}),
        el('td', {text: new Date(w.registered_unix_ms).toLocaleString()}));
    }));
    if (!workers.length) body.append(el('tr', {}, el('td', {colspan: 8, text: 'No worker has registered yet.'})));
  }
  async function load() {
    try {
      render((await api('workers')).workers);
      window.isoflopReady = true;
    } catch (e) { fail(document.getElementById('main'), e); }
  }
  const reload = later(load, 1000);
  load();
  setInterval(() => {  // ages tick locally; no request
    for (const td of body.querySelectorAll('td.beat')) td.textContent = ago(Number(td.dataset.ms));
  }, 1000);
  // A worker turns lost by saying nothing, so no event tells: re-read the
  // states every 5 s (one cached query, dashboards/API.md).
  setInterval(reload, 5000);
  live('', {
    worker: (w) => {
      const td = body.querySelector(`tr[data-worker="${CSS.escape(w.worker)}"] td.beat`);
      if (td && 'last_heartbeat_unix_ms' in w) { td.dataset.ms = w.last_heartbeat_unix_ms; td.textContent = ago(w.last_heartbeat_unix_ms); } else reload();
    },
    trial: reload, reset: load}, document.getElementById('live'));
})();

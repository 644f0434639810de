// Workers page: hosts, GPUs, current trials, last heartbeat (live), drained.
'use strict';
(() => {
  const {api, el, ago, later, live, nav, fail} = isoflop;
  nav('workers');
  const body = document.querySelector('#workers tbody');
  const beats = new Map();  // worker id -> last heartbeat ms

  function render(workers) {
    body.replaceChildren(...workers.map((w) => {
      beats.set(w.id, w.last_heartbeat_unix_ms);
      return el('tr', {'data-worker': w.id},
        el('td', {}, w.id, w.draining ? el('div', {class: 'muted', text: 'draining'}) : null),
        el('td', {text: w.hostname}), el('td', {class: 'num', text: w.gpus}),
        el('td', {class: 'num', text: w.cpu_slots}),
        el('td', {}, w.trials.length ? w.trials.flatMap((t, i) => [i ? ', ' : '',
          el('a', {href: '/sweep.html?id=' + encodeURIComponent(t.sweep)}, t.id.slice(0, 10))]) : 'idle'),
        el('td', {class: 'beat', 'data-ms': w.last_heartbeat_unix_ms, title: new Date(w.last_heartbeat_unix_ms).toISOString(),
                  text: ago(w.last_heartbeat_unix_ms)}),
        el('td', {text: new Date(w.registered_unix_ms).toLocaleString()}));
    }));
    if (!workers.length) body.append(el('tr', {}, el('td', {colspan: 7, text: 'No worker has registered yet.'})));
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
  live('', {
    worker: (w) => {
      const td = body.querySelector(`tr[data-worker="${CSS.escape(w.worker)}"] td.beat`);
      if (td && 'last_heartbeat_unix_ms' in w) { td.dataset.ms = w.last_heartbeat_unix_ms; td.textContent = ago(w.last_heartbeat_unix_ms); } else reload();
    },
    trial: reload, reset: load}, document.getElementById('live'));
})();

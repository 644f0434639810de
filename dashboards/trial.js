// Trial page: summary, train/val curves, attempts, logs (followed while the
// trial runs), the resolved config, and sampling once it has succeeded.
// Live: metric points and trial updates over /api/v1/events; the log is
// polled from its next_offset (GET /api/v1/trials/{id}/logs) every 2 s while
// the attempt's log is not finished.
'use strict';
(() => {
  const {api, el, param, nav, fail, fixed, num, ago, later, live, chart, line, chartReady, charts} = isoflop;
  const id = param('id');
  const main = document.getElementById('main');
  const enc = encodeURIComponent(id || '');
  document.getElementById('trial-id').textContent = id || '(no ?id=)';
  document.getElementById('copy-id').addEventListener('click', async (ev) => {
    try { await navigator.clipboard.writeText(id); ev.target.textContent = 'Copied'; } catch (e) {
      const r = document.createRange();  // no clipboard permission: select it for Ctrl+C
      r.selectNodeContents(document.getElementById('trial-id'));
      getSelection().removeAllRanges();
      getSelection().addRange(r);
    }
  });
  let trial = null;          // the last GET /api/v1/trials/{id}
  const curves = {train_loss: new Map(), val_loss: new Map()};  // name -> step -> value
  const ready = {trial: false, curves: false, log: false};
  const markReady = (k) => { ready[k] = true; if (Object.values(ready).every(Boolean)) window.isoflopReady = true; };

  // ------------------------------------------------------------ summary
  function stat(label, value, key) {
    return el('div', {'data-key': key}, label, el('b', {text: value}));
  }
  function renderTrial(t) {
    trial = t;
    document.getElementById('where').replaceChildren(
        'Sweep ', el('a', {href: '/sweep.html?id=' + encodeURIComponent(t.sweep)}, t.sweep),
        ` · trial #${t.ordinal}`, t.spec ? ` · ${t.spec.dataset || ''}` : '');
    const steps = t.steps ? `${t.step} / ${t.steps}` : String(t.step);
    // The final val loss once reported, else the latest evaluation's.
    let val = t.val_loss, valLabel = 'Val loss';
    if (val === null && curves.val_loss.size) {
      val = curves.val_loss.get(Math.max(...curves.val_loss.keys()));
      valLabel = 'Val loss (latest)';
    }
    document.getElementById('summary').replaceChildren(...[
        stat('State', t.state.toLowerCase(), 'state'), stat('Attempt', t.attempt, 'attempt'),
        stat('Worker', t.worker || '—', 'worker'), stat('Step', steps, 'step'),
        stat('Train loss', fixed(t.train_loss), 'train_loss'), stat(valLabel, fixed(val), 'val_loss'),
        stat('Tokens/s', num(t.tokens_per_s), 'tokens_per_s'), stat('Updated', ago(t.updated_unix_ms), 'updated'),
        t.error ? el('div', {class: 'error', 'data-key': 'error', style: 'flex-basis:100%'}, t.error) : null]
        .filter((e) => e !== null));
    document.querySelector('#summary [data-key="state"] b').className = 'state-' + t.state;
    renderAttempts(t.attempts);
    renderConfig(t.spec);
    const select = document.getElementById('log-attempt');
    const keep = select.value;
    select.replaceChildren(...(t.attempts.length ? t.attempts : [{attempt: t.attempt}]).slice().reverse().map(
        (a) => el('option', {value: a.attempt}, `${a.attempt}${a.attempt === t.attempt ? ' (latest)' : ''}`)));
    if (keep && [...select.options].some((o) => o.value === keep)) select.value = keep;
    const done = t.state === 'SUCCEEDED';
    document.getElementById('sampling').hidden = !done;
    document.getElementById('no-sampling').hidden = done;
  }

  function duration(a) {
    const end = a.ended_unix_ms || Date.now();
    if (!a.started_unix_ms) return '—';
    const s = Math.max(0, (end - a.started_unix_ms) / 1000);
    return s < 90 ? s.toFixed(0) + ' s' : s < 5400 ? (s / 60).toFixed(1) + ' min' : (s / 3600).toFixed(2) + ' h';
  }
  function when(ms) { return ms ? new Date(ms).toLocaleString() : '—'; }
  function renderAttempts(attempts) {
    const body = document.querySelector('#attempts tbody');
    body.replaceChildren(...attempts.slice().reverse().map((a) => el('tr', {'data-attempt': a.attempt},
        el('td', {class: 'num', text: a.attempt}), el('td', {text: a.worker || '—'}),
        el('td', {text: when(a.started_unix_ms), title: a.started_unix_ms ? new Date(a.started_unix_ms).toISOString() : null}),
        el('td', {text: a.ended_unix_ms ? when(a.ended_unix_ms) : 'running'}),
        el('td', {class: 'num', text: duration(a)}),
        el('td', {class: 'num', text: num(a.tokens_per_s)}),
        el('td', {text: a.ended_unix_ms ? (a.outcome || '').replace('OUTCOME_', '').toLowerCase() : '—'}),
        el('td', {class: 'num', text: a.ended_unix_ms ? a.exit_code : '—'}),
        el('td', {class: 'msg', text: a.message || ''}))));
    if (!attempts.length) body.append(el('tr', {}, el('td', {colspan: 9, text: 'Not leased yet.'})));
  }

  // Nested objects become dotted keys: model.d_model = 256.
  function flatten(obj, prefix, out) {
    for (const [k, v] of Object.entries(obj || {})) {
      const key = prefix ? prefix + '.' + k : k;
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) flatten(v, key, out);
      else out.push([key, Array.isArray(v) ? JSON.stringify(v) : String(v)]);
    }
    return out;
  }
  function renderConfig(spec) {
    const rows = flatten(spec, '', []);
    document.querySelector('#config tbody').replaceChildren(...rows.map(([k, v]) =>
      el('tr', {'data-field': k}, el('th', {scope: 'row', text: k}), el('td', {text: v}))));
  }

  // ------------------------------------------------------------- curves
  const toData = (m) => [...m.entries()].sort((a, b) => a[0] - b[0]).map(([x, y]) => ({x, y}));
  function drawCurves() {
    const c = charts['trial-loss'];
    const sets = [line('train loss', toData(curves.train_loss), 0),
                  line('val loss', toData(curves.val_loss), 1, {pointRadius: 3, showLine: true})];
    if (!c) {
      chart(document.getElementById('curves'), 'trial-loss', 'Loss', {
        xTitle: 'step', yTitle: 'loss', xLog: false, yLog: false, datasets: sets,
        describe: 'training and validation loss against optimizer step'});
      return;
    }
    c.data.datasets[0].data = sets[0].data;
    c.data.datasets[1].data = sets[1].data;
    c.update('none');
  }
  async function loadCurves() {
    const q = `trial=${enc}&points=2000`;
    const [tr, va] = await Promise.all([
      api(`sweeps/${encodeURIComponent(trial.sweep)}/curves?${q}&name=train_loss`),
      api(`sweeps/${encodeURIComponent(trial.sweep)}/curves?${q}&name=val_loss`)]);
    for (const [answer, m] of [[tr, curves.train_loss], [va, curves.val_loss]]) {
      for (const c of answer.curves) for (const [s, v] of c.points) if (v !== null) m.set(s, v);
    }
    await chartReady;
    drawCurves();
  }
  const redraw = later(drawCurves, 250);

  // --------------------------------------------------------------- logs
  const logEl = document.getElementById('log');
  const logStatus = document.getElementById('log-status');
  // attempt: asked for (0: the latest); shown: the attempt the answer was.
  let log = {attempt: 0, shown: 0, next: 0, finished: false, timer: null, busy: false, again: false};
  async function pollLog() {
    clearTimeout(log.timer);
    const mine = log;
    if (mine.busy) { mine.again = true; return; }  // one read at a time: offsets stay in order
    mine.busy = true;
    try {
      const r = await api(`trials/${enc}/logs?attempt=${mine.attempt}&offset=${mine.next}`);
      if (mine !== log) return;  // the attempt was switched meanwhile
      if (r.first_offset > mine.next) logEl.append(`[… ${r.first_offset - mine.next} older bytes dropped]\n`);
      if (r.data) {
        const atEnd = logEl.scrollTop + logEl.clientHeight >= logEl.scrollHeight - 4;
        logEl.append(r.data);
        if (atEnd) logEl.scrollTop = logEl.scrollHeight;
      }
      mine.next = r.next_offset;
      mine.shown = r.attempt;
      mine.finished = r.finished || r.attempt !== r.latest_attempt;
      logStatus.textContent = `${r.next_offset} bytes` + (mine.finished ? ', complete' : ', following');
    } catch (e) { logStatus.textContent = String(e.message || e); }
    mine.busy = false;
    markReady('log');
    if (mine !== log) return;
    if (mine.again) { mine.again = false; pollLog(); return; }
    if (!mine.finished && document.getElementById('follow').checked) mine.timer = setTimeout(pollLog, 2000);
  }
  function startLog(attempt) {
    clearTimeout(log.timer);
    log = {attempt, shown: 0, next: 0, finished: false, timer: null, busy: false, again: false};
    logEl.textContent = '';
    pollLog();
  }
  document.getElementById('log-attempt').addEventListener('change', (ev) => startLog(Number(ev.target.value)));
  document.getElementById('follow').addEventListener('change', (ev) => { if (ev.target.checked) pollLog(); });

  // --------------------------------------------------------------- load
  async function loadTrial() {
    renderTrial(await api('trials/' + enc));
    markReady('trial');
  }
  const reloadTrial = later(() => loadTrial().catch((e) => fail(main, e)), 1000);

  (async () => {
    if (!id) { nav('trial'); fail(main, new Error('no trial: open this page as /trial.html?id=TRIAL')); return; }
    try {
      await loadTrial();
      nav('trial', trial.sweep);
      startLog(0);
      await loadCurves();
      renderTrial(trial);  // the latest val loss, now that the curve is here
      markReady('curves');
      live('sweep=' + encodeURIComponent(trial.sweep), {
        metric: (m) => {
          if (m.trial !== id) return;
          for (const [step, name, value] of m.points) if (curves[name]) curves[name].set(step, value);
          redraw();
          reloadTrial();  // step, losses and rate in the summary (debounced: one read a second)
        },
        trial: (t) => {
          if (t.id !== id) return;
          reloadTrial();
          if (log.attempt === 0 && log.shown > 0 && t.attempt > log.shown) startLog(0);  // a new attempt's log
          else if (!log.finished && document.getElementById('follow').checked) pollLog();
        },
        reset: () => location.reload()}, document.getElementById('live'));
    } catch (e) {
      if (!trial) nav('trial', param('sweep'));
      fail(main, e);
    }
  })();

  // ----------------------------------------------------------- sampling
  const form = document.getElementById('sample');
  const out = document.getElementById('output');
  const stats = document.getElementById('stats');
  const stop = document.getElementById('stop');
  let abort = null;

  // One SSE event block ("event: T\ndata: J") -> [type, data].
  function parse(block) {
    let type = '', data = '';
    for (const l of block.split('\n')) {
      if (l.startsWith('event: ')) type = l.slice(7);
      else if (l.startsWith('data: ')) data = l.slice(6);
    }
    return [type, data ? JSON.parse(data) : null];
  }

  function body() {
    const text = document.getElementById('prompt').value;
    const b = {max_new_tokens: Number(form.max_new_tokens.value), temperature: Number(form.temperature.value),
               top_p: Number(form.top_p.value), seed: Number(form.seed.value)};
    if (/^\s*\d+(\s*,\s*\d+)*\s*$/.test(text)) b.prompt_ids = text.split(',').map(Number);
    else b.prompt = text;
    return b;
  }

  async function generate(ev) {
    ev.preventDefault();
    document.querySelectorAll('#sampling .error').forEach((e) => e.remove());
    out.textContent = '';
    stats.textContent = 'starting…';
    abort = new AbortController();
    stop.disabled = false;
    form.querySelector('#go').disabled = true;
    const t0 = performance.now();
    let firstMs = null, n = 0, pending = '';
    try {
      const res = await fetch(`/api/v1/trials/${enc}/generate`, {
        method: 'POST', credentials: 'same-origin', signal: abort.signal,
        headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body())});
      if (res.status === 401) {
        location.href = '/login.html?next=' + encodeURIComponent(location.pathname + location.search);
        return;
      }
      if (!res.ok) throw new Error((await res.json()).error || res.statusText);
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        pending += decoder.decode(value, {stream: true});
        let end;
        while ((end = pending.indexOf('\n\n')) >= 0) {
          const [type, data] = parse(pending.slice(0, end));
          pending = pending.slice(end + 2);
          if (type === 'start' && data.prompt) out.append(el('span', {class: 'prompt', text: data.prompt}));
          if (type === 'token') {
            if (firstMs === null) firstMs = performance.now() - t0;
            n += 1;
            out.append(data.text !== undefined ? data.text : `${data.token} `);
            stats.textContent = `${n} tokens; first after ${firstMs.toFixed(0)} ms`;
          }
          if (type === 'done') {
            const rate = data.last_token_ms > data.first_token_ms ?
                (data.n - 1) * 1000 / (data.last_token_ms - data.first_token_ms) : 0;
            stats.textContent = `${data.n} tokens (${data.reason}); first after ${firstMs.toFixed(0)} ms, ` +
                `then ${rate.toFixed(0)} tokens/s`;
          }
          if (type === 'error') throw new Error(data.error);
        }
      }
    } catch (e) {
      if (e.name === 'AbortError') stats.textContent = `stopped after ${n} tokens`;
      else { stats.textContent = ''; fail(document.getElementById('sampling'), e); }
    } finally {
      stop.disabled = true;
      form.querySelector('#go').disabled = false;
      abort = null;
    }
  }

  form.addEventListener('submit', generate);
  stop.addEventListener('click', () => abort && abort.abort());
})();

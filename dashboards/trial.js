// Trial page: a prompt box that streams a continuation from the trial's final
// weights (POST /api/v1/trials/{id}/generate, Server-Sent Events read from a
// fetch body: EventSource cannot POST).
'use strict';
(() => {
  const {el, param, nav, fail} = isoflop;
  const id = param('id');
  nav('trial', param('sweep'));
  document.getElementById('trial-id').textContent = id || '(no ?id=)';
  const form = document.getElementById('sample');
  const out = document.getElementById('output');
  const stats = document.getElementById('stats');
  const stop = document.getElementById('stop');
  let abort = null;

  // One SSE event block ("event: T\ndata: J") -> [type, data].
  function parse(block) {
    let type = '', data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) type = line.slice(7);
      else if (line.startsWith('data: ')) data = line.slice(6);
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
    document.querySelectorAll('#main .error').forEach((e) => e.remove());
    out.textContent = '';
    stats.textContent = 'starting…';
    abort = new AbortController();
    stop.disabled = false;
    form.querySelector('#go').disabled = true;
    const t0 = performance.now();
    let firstMs = null, n = 0, pending = '';
    try {
      const res = await fetch(`/api/v1/trials/${encodeURIComponent(id)}/generate`, {
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
      else { stats.textContent = ''; fail(document.getElementById('main'), e); }
    } finally {
      stop.disabled = true;
      form.querySelector('#go').disabled = false;
      abort = null;
    }
  }

  form.addEventListener('submit', generate);
  stop.addEventListener('click', () => abort && abort.abort());
  window.isoflopReady = true;
})();

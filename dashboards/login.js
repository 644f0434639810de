'use strict';
(() => {
  const q = new URLSearchParams(location.search);
  const error = document.getElementById('error');
  if (q.get('error')) error.hidden = false;
  // GET /login?once=CODE with a spent, expired or unknown code.
  if (q.get('error') === 'link') {
    error.textContent = 'That login link was already used or has expired: each link opens once, within 10 minutes. ' +
        'Ask for a new one (isoflop dashboard url) or paste the token below.';
  }
  const next = q.get('next');
  if (next && next.startsWith('/') && !next.startsWith('//')) document.getElementById('next').value = next;
})();

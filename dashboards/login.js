'use strict';
(() => {
  const q = new URLSearchParams(location.search);
  if (q.get('error')) document.getElementById('error').hidden = false;
  const next = q.get('next');
  if (next && next.startsWith('/') && !next.startsWith('//')) document.getElementById('next').value = next;
})();

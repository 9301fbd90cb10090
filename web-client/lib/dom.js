// Small DOM helpers shared by the page: lookup by data-testid, escaping,
// time and error formatting.

export function $(testid, root = document) {
  return root.querySelector(`[data-testid="${testid}"]`);
}

const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function esc(v) {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ESC[c]);
}

/** HH:MM:SS of a microsecond timestamp (local time). */
export function timeOf(tsUs) {
  if (typeof tsUs !== 'number') return '';
  const d = new Date(Math.floor(tsUs / 1000));
  return d.toTimeString().slice(0, 8);
}

/** "code (num): message" for an error answer, as shown to a person. */
export function errorText(e) {
  if (!e) return '';
  const code = e.code ?? 'error';
  const num = e.num ? ` (${e.num})` : '';
  const msg = e.message && e.message !== code ? `: ${e.message}` : '';
  const outcome = e.outcome === 'unknown' ? ' [outcome unknown]' : '';
  return `${code}${num}${msg}${outcome}`;
}

// The totals: the billing period's, and the span's per class.

import { bytesCell, el, replaceRows } from './cells.js';
import { classes } from './charts.js';
import { formatBytes, formatTime } from './units.js';

// renderBilling shows doc (a report of the billing period) in the card
// dl: since, until, down, up and total.
export function renderBilling(dl, doc) {
  show(dl, 'since', doc.since, formatTime(doc.since));
  show(dl, 'until', doc.until, formatTime(doc.until));
  for (const field of ['bytes_down', 'bytes_up', 'bytes']) {
    show(dl, field, doc.total[field], formatBytes(doc.total[field]));
  }
}

// show puts a figure in the element of dl marked with field.
function show(dl, field, value, text) {
  const dd = dl.querySelector(`[data-field=${field}]`);
  dd.dataset.value = value;
  dd.textContent = text;
}

// renderClasses shows the total of series (an answer of api/v1/series)
// per class in table, and the span it covers in caption.
export function renderClasses(table, caption, series, spanName) {
  const t = series.total;
  const rows = classes.map((c) => el('tr', { 'data-key': c },
    el('th', { scope: 'row' }, el('span', { class: `swatch c-${c}` }), c),
    bytesCell('bytes_down', t[`${c}_down`]),
    bytesCell('bytes_up', t[`${c}_up`]),
    bytesCell('bytes', t[`${c}_down`] + t[`${c}_up`])));
  const total = el('tr', { 'data-key': 'total' }, el('th', { scope: 'row' }, 'total'),
    bytesCell('bytes_down', t.bytes_down), bytesCell('bytes_up', t.bytes_up), bytesCell('bytes', t.bytes));
  replaceRows(table, rows, [total]);
  caption.textContent = `${spanName}: ${formatTime(series.since)} – ${formatTime(series.until)}`;
}

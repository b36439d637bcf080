// The busiest clients or prefixes over the span of the charts.

import { bytesCell, clientCell, el, emptyRow, rateCell, replaceRows } from './cells.js';
import { link } from './view.js';

// renderTop shows doc (an answer of api/v1/report by client or prefix) in
// table.
export function renderTop(table, doc, view) {
  const byClient = doc.by === 'client';
  const body = doc.rows.map((r, i) => {
    const key = byClient ? r.ip : r.prefix;
    return el('tr', { 'data-key': key },
      el('td', { class: 'num' }, String(i + 1)),
      byClient ? clientCell(r.ip, r.dns, link(view, { client: r.ip })) : el('td', {}, key),
      ...cells(r));
  });
  const footer = [];
  if (doc.rest) {
    const more = byClient ? `${doc.rest.clients} more clients` : `${doc.rest.prefixes} more prefixes`;
    footer.push(el('tr', { 'data-key': 'rest' }, el('td', { colspan: 2 }, more), ...cells(doc.rest)));
  }
  footer.push(el('tr', { 'data-key': 'total' }, el('td', { colspan: 2 }, 'total'), ...cells(doc.total)));
  if (body.length === 0) {
    body.push(emptyRow(table, 'no traffic in this span'));
  }
  replaceRows(table, body, footer);
  table.querySelector('[data-column=key]').textContent = byClient ? 'Client' : 'Prefix';
}

function cells(r) {
  return [
    bytesCell('bytes_down', r.bytes_down),
    bytesCell('bytes_up', r.bytes_up),
    bytesCell('bytes', r.bytes),
    rateCell('bytes_per_second', r.bytes, r.seconds),
  ];
}

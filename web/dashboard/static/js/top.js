// The busiest clients or prefixes over the span of the charts.

import { bytesCell, clientCell, el, emptyRow, rateCell, replaceRows } from './cells.js';
import { link } from './view.js';

// renderTop shows doc (an answer of api/v1/report by client or prefix) in
// table. Clients have a role over the span (a column prefixes lack).
export function renderTop(table, doc, view) {
  const byClient = doc.by === 'client';
  const body = doc.rows.map((r, i) => {
    const key = byClient ? r.ip : r.prefix;
    const keyCells = byClient
      ? [clientCell(r.ip, r.dns, link(view, { client: r.ip })), roleCell(r.role)]
      : [el('td', {}, key)];
    return el('tr', { 'data-key': key },
      el('td', { class: 'num' }, String(i + 1)),
      ...keyCells,
      ...cells(r));
  });
  const keyColumns = byClient ? 3 : 2;
  const footer = [];
  if (doc.rest) {
    const more = byClient ? `${doc.rest.clients} more clients` : `${doc.rest.prefixes} more prefixes`;
    footer.push(el('tr', { 'data-key': 'rest' }, el('td', { colspan: keyColumns }, more), ...cells(doc.rest)));
  }
  footer.push(el('tr', { 'data-key': 'total' }, el('td', { colspan: keyColumns }, 'total'), ...cells(doc.total)));
  table.querySelector('[data-column=key]').textContent = byClient ? 'Client' : 'Prefix';
  table.querySelector('[data-column=role]').hidden = !byClient;
  if (body.length === 0) {
    body.push(emptyRow(table, 'no traffic in this span'));
  }
  replaceRows(table, body, footer);
}

// roleCell is a cell showing a client's role, which may wrap after each
// of its "+".
function roleCell(role) {
  const td = el('td', { class: 'role', 'data-field': 'role', 'data-value': role });
  role.split('+').forEach((tag, i) => {
    if (i > 0) {
      td.append('+', el('wbr'));
    }
    td.append(tag);
  });
  return td;
}

function cells(r) {
  return [
    bytesCell('bytes_down', r.bytes_down),
    bytesCell('bytes_up', r.bytes_up),
    bytesCell('bytes', r.bytes),
    rateCell('bytes_per_second', r.bytes, r.seconds),
  ];
}

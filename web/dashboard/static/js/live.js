// The live table: what the kernel counted since the last flush, per
// client, with the average rates over that time.

import { bytesCell, clientCell, el, emptyRow, rateCell, replaceRows } from './cells.js';
import { formatClock } from './units.js';
import { link } from './view.js';

// renderLive shows doc (an answer of api/v1/live) in table, only the
// view's client in a client's view.
export function renderLive(table, note, doc, view) {
  const seconds = doc.seconds;
  const rows = doc.rows.filter((r) => !view.client || r.ip === view.client);
  const body = rows.map((r) =>
    el('tr', { 'data-key': r.ip },
      clientCell(r.ip, r.dns, link(view, { client: r.ip })),
      ...cells(r, seconds)));
  const footer = [];
  if (!view.client && doc.rest) {
    footer.push(el('tr', { 'data-key': 'rest' },
      el('td', {}, `${doc.rest.clients} more clients`), ...cells(doc.rest, seconds)));
  }
  if (!view.client && rows.length > 0) {
    footer.push(el('tr', { 'data-key': 'total' }, el('td', {}, 'total'), ...cells(doc.total, seconds)));
  }
  if (body.length === 0) {
    body.push(emptyRow(table, view.client ? 'no traffic from this client since the last flush' : 'no traffic since the last flush'));
  }
  replaceRows(table, body, footer);
  table.dataset.seconds = seconds;
  table.dataset.at = doc.at;
  note.textContent = `since ${formatClock(doc.since)} (${seconds} s), updated ${formatClock(doc.at)}`;
}

function cells(r, seconds) {
  return [
    rateCell('rate_down', r.bytes_down, seconds),
    rateCell('rate_up', r.bytes_up, seconds),
    bytesCell('bytes_down', r.bytes_down),
    bytesCell('bytes_up', r.bytes_up),
  ];
}

// Building the tables. Every figure shown carries its raw value in
// data-value and its column in data-field, and every row its key in
// data-key, so that a reader of the page (the browser test) can check
// what is shown against what was asked.

import { formatBytes, formatRate } from './units.js';

// el returns a new element with attributes attrs and children.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

// bytesCell is a cell showing field's bytes.
export function bytesCell(field, bytes) {
  return el('td', { class: 'num', 'data-field': field, 'data-value': bytes }, formatBytes(bytes));
}

// rateCell is a cell showing bytes over seconds as a rate.
export function rateCell(field, bytes, seconds) {
  return el('td', { class: 'num', 'data-field': field, 'data-value': seconds > 0 ? bytes / seconds : 0 }, formatRate(bytes, seconds));
}

// replaceRows puts rows in place of the rows of the table's tbody and
// tfoot.
export function replaceRows(table, rows, footer = []) {
  table.tBodies[0].replaceChildren(...rows);
  table.tFoot.replaceChildren(...footer);
}

// clientCell is a cell naming a client: its address, a link to its own
// view, and its reverse DNS name when one is known.
export function clientCell(ip, dns, href) {
  const td = el('td', {}, el('a', { href }, ip));
  if (dns) {
    td.append(' ', el('span', { class: 'dns', title: dns }, dns));
  }
  return td;
}

// emptyRow is a row spanning the table, saying why it has no figures.
export function emptyRow(table, text) {
  return el('tr', {}, el('td', { class: 'empty', colspan: table.tHead.rows[0].cells.length }, text));
}

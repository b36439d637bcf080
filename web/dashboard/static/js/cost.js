// What egress costs: the host's bill of the billing period, each client's
// share of it, the quotas' use and the alerts firing. Figures that are not
// known (no hostd price) show "—" and carry no data-value: never a 0.

import { bytesCell, clientCell, el, emptyRow, replaceRows } from './cells.js';
import { formatBits, formatBytes, formatMoney, formatTime } from './units.js';
import { link } from './view.js';

// renderEgress shows egress (the egress member of a billing report) in
// the card dl.
export function renderEgress(dl, egress) {
  const figures = {
    bytes: formatBytes, billable_bytes: formatBytes, projected_up_bytes: formatBytes, projected_bytes: formatBytes,
    cost: formatMoney, value_sc: (v) => formatMoney(v) + ' SC', margin: formatMoney, projected_cost: formatMoney,
    percentile95_bits_per_second: formatBits,
  };
  for (const [field, format] of Object.entries(figures)) {
    const dd = dl.querySelector(`[data-field=${field}]`);
    setFigure(dd, egress[field], format);
  }
  const p95 = dl.querySelector('[data-field=percentile95_bits_per_second]');
  p95.title = egress.samples ? `${egress.samples} 5-minute samples from ${formatTime(egress.sampled_from)}` : 'no samples stored';
}

// setFigure shows value in e, or "—" when it is null (unknown).
function setFigure(e, value, format) {
  if (value === null || value === undefined) {
    delete e.dataset.value;
    e.textContent = '—';
    return;
  }
  e.dataset.value = value;
  e.textContent = format(value);
}

// moneyCell is a cell of an amount of money, "—" when unknown.
function moneyCell(field, value) {
  const td = el('td', { class: 'num', 'data-field': field });
  setFigure(td, value, formatMoney);
  return td;
}

// renderCosts shows doc (an answer of api/v1/report of the billing period
// by client) in table: each client's egress, cost, value and margin.
export function renderCosts(table, doc, view) {
  const cells = (r) => [bytesCell('egress_bytes', r.egress_bytes), moneyCell('cost', r.cost),
    moneyCell('value_sc', r.value_sc), moneyCell('margin', r.margin)];
  const body = doc.rows.map((r, i) => el('tr', { 'data-key': r.ip },
    el('td', { class: 'num' }, String(i + 1)), clientCell(r.ip, r.dns, link(view, { client: r.ip })), ...cells(r)));
  const footer = [];
  if (doc.rest) {
    footer.push(el('tr', { 'data-key': 'rest' }, el('td', { colspan: 2 }, `${doc.rest.clients} more clients`), ...cells(doc.rest)));
  }
  footer.push(el('tr', { 'data-key': 'total' }, el('td', { colspan: 2 }, 'total'), ...cells(doc.total)));
  if (body.length === 0) {
    body.push(emptyRow(table, 'no traffic in this billing period'));
  }
  replaceRows(table, body, footer);
}

// renderAlerts shows doc (the answer of api/v1/alerts): each quota's use
// and projection in table, the alerts firing in list.
export function renderAlerts(table, list, doc) {
  const share = (field, v) => el('td', { class: 'num', 'data-field': field, 'data-value': v }, `${(v * 100).toFixed(0)}%`);
  const rows = doc.quotas.map((q) => el('tr', { 'data-key': q.direction },
    el('th', { scope: 'row' }, q.direction),
    bytesCell('used_bytes', q.used_bytes), bytesCell('quota_bytes', q.quota_bytes), share('share', q.share),
    bytesCell('projected_bytes', q.projected_bytes), share('projected_share', q.projected_share)));
  if (rows.length === 0) {
    rows.push(emptyRow(table, 'no quota set (QUOTA_*_BYTES)'));
  }
  replaceRows(table, rows);
  const items = doc.active.map((a) => el('li', { 'data-key': a.id, 'data-kind': a.kind },
    el('strong', {}, a.kind.replace('_', ' ')), ` ${a.subject} since ${formatTime(a.started_at)}`));
  if (items.length === 0) {
    items.push(el('li', { class: 'muted' }, 'no alert firing'));
  }
  list.replaceChildren(...items);
}

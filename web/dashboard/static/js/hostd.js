// The hostd panel: over the span shown, the bytes collector saw on the
// wire beside the payload hostd counted (a report's "hostd" member), the
// egress hostd was paid for, and the hostd alerts firing now.

import { bytesCell, el, emptyRow, replaceRows } from './cells.js';
import { formatBytes, formatTime } from './units.js';

// renderHostd shows figures (a report's "hostd" member, undefined when
// hostd's figures cover no period of the span) in the panel section, and
// the alerts of kind hostd_divergence among active.
export function renderHostd(section, figures, active) {
  section.hidden = !figures && active.length === 0;
  const table = section.querySelector('table');
  const note = section.querySelector('.note');
  if (!figures) {
    replaceRows(table, [emptyRow(table, 'hostd counted nothing in this span')]);
    note.textContent = '';
  } else {
    const h = figures.hostd;
    const rows = [
      protocolRow('rhp', 'RHP (siamux + QUIC)', figures.wire_rhp, h.rhp, figures.ratio_rhp),
      protocolRow('consensus', 'consensus', figures.wire_consensus, h.syncer, figures.ratio_consensus),
    ];
    replaceRows(table, rows);
    note.textContent = `hostd ${h.hostd_version}, ${h.periods} periods of 5 minutes, ${formatTime(figures.since)} – ${formatTime(figures.until)}`;
  }
  renderEgress(section.querySelector('dl'), figures);
  renderAlerts(section.querySelector('ul'), active.filter((a) => a.kind === 'hostd_divergence'));
}

// protocolRow is a row of wire bytes beside hostd's payload (undefined
// where hostd has no figures: syncer bytes before 2.6.0) and their ratio.
function protocolRow(key, name, wire, payload, ratio) {
  const missing = (field) => el('td', { class: 'num', 'data-field': field }, '—');
  return el('tr', { 'data-key': key },
    el('th', { scope: 'row' }, name),
    bytesCell('wire_ingress', wire.ingress),
    bytesCell('wire_egress', wire.egress),
    payload ? bytesCell('hostd_ingress', payload.ingress) : missing('hostd_ingress'),
    payload ? bytesCell('hostd_egress', payload.egress) : missing('hostd_egress'),
    ratio == null ? missing('ratio') : el('td', { class: 'num', 'data-field': 'ratio', 'data-value': ratio }, ratio.toFixed(3)));
}

// renderEgress shows the egress hostd was paid for and the share of the
// RHP egress on the wire nobody paid for.
function renderEgress(dl, figures) {
  const paid = figures?.hostd.paid_egress;
  const share = figures?.unpaid_egress_share;
  show(dl, 'paid_egress', paid, paid == null ? '—' : formatBytes(paid));
  show(dl, 'wire_egress', figures?.wire_rhp.egress, figures ? formatBytes(figures.wire_rhp.egress) : '—');
  let text = share == null ? '—' : (share * 100).toFixed(1) + ' %';
  if (figures?.paid_above_wire) {
    text += ' (hostd was paid for more than the wire carried)';
  }
  show(dl, 'unpaid_egress_share', share, text);
}

function show(dl, field, value, text) {
  const dd = dl.querySelector(`[data-field=${field}]`);
  dd.dataset.value = value ?? '';
  dd.textContent = text;
}

// renderAlerts lists the divergence alerts firing, or says there is none.
function renderAlerts(ul, alerts) {
  if (alerts.length === 0) {
    ul.replaceChildren(el('li', { class: 'muted' }, 'no hostd alert firing'));
    return;
  }
  ul.replaceChildren(...alerts.map((a) => {
    const d = a.divergence;
    const ratio = d.ratio == null ? 'hostd counted none' : `ratio ${d.ratio.toFixed(2)}`;
    const usual = d.usual_ratio == null ? '' : `, usually ${d.usual_ratio.toFixed(2)}`;
    return el('li', { 'data-key': a.id, 'data-field': d.reason, class: 'alert' },
      el('strong', {}, d.reason.replaceAll('_', ' ')),
      ` since ${formatTime(a.started_at)}: ${formatBytes(d.wire_rhp_bytes)} on the wire, ${formatBytes(d.hostd_rhp_bytes)} counted by hostd (${ratio}${usual})`);
  }));
}

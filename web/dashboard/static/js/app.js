// The dashboard: reads the view from the address, loads what it shows
// from the API, and keeps it current: the live table every few seconds,
// the rest every minute.

import { getJSON } from './api.js';
import { StackedChart } from './charts.js';
import { renderAlerts, renderCosts, renderEgress } from './cost.js';
import { renderHostd } from './hostd.js';
import { renderLive } from './live.js';
import { onThemeChange, initTheme } from './theme.js';
import { renderTop } from './top.js';
import { renderBilling, renderClasses } from './totals.js';
import { link, readView, spans, viewKey } from './view.js';

// The live counters change with every packet; the stored ones once a
// flush, every minute by default.
const liveEvery = 5000;
const storedEvery = 60000;
const topRows = 20;
const liveRows = 50;

const $ = (id) => document.getElementById(id);
const charts = [new StackedChart($('chart-up'), 'up'), new StackedChart($('chart-down'), 'down')];

// loading counts the loads of the view begun, so that an answer to a view
// left since is dropped.
let loading = 0;

// loadView shows the view in the address; once every part is drawn it
// marks the page with the view's key in body's data-loaded.
async function loadView() {
  const view = readView();
  const load = ++loading;
  renderNav(view);
  try {
    const client = view.client || undefined;
    const [series, billing, alerts, costs] = await Promise.all([
      getJSON('series', { span: view.span, client }),
      client ? getJSON('report', { period: 'billing', by: 'class', client }) : getJSON('billing'),
      getJSON('alerts'),
      client ? null : getJSON('report', { period: 'billing', by: 'client', top: topRows }),
    ]);
    // The busiest over exactly the charts' span; in a client's view, the
    // client's own row, for its name.
    const top = await getJSON('report', { since: series.since, by: client ? 'client' : view.by, top: topRows, client });
    if (load !== loading) {
      return;
    }
    renderBilling($('billing'), billing);
    renderEgress($('egress'), billing.egress);
    renderAlerts($('quotas'), $('alerts'), alerts);
    renderClasses($('classes'), $('classes-caption'), series, spans[view.span]);
    if (client) {
      $('client-dns').textContent = top.rows[0]?.dns || '';
      $('hostd').hidden = true;
    } else {
      renderTop($('top-table'), top, view);
      renderCosts($('cost-table'), costs, view);
      // hostd knows no clients: its panel is the host's alone.
      renderHostd($('hostd'), top.hostd, alerts.active);
    }
    await Promise.all(charts.map((c) => c.draw(series)));
    document.body.dataset.loaded = viewKey(view);
    showProblem('view', null);
  } catch (err) {
    if (load === loading) {
      showProblem('view', err);
    }
  }
}

async function loadLive() {
  try {
    renderLive($('live-table'), $('live-note'), await getJSON('live', { top: liveRows }), readView());
    showProblem('live', null);
  } catch (err) {
    showProblem('live', err);
  }
}

// renderNav points the span and grouping links at the view they lead to,
// marks the current ones, and shows the client's view or the busiest.
function renderNav(view) {
  for (const a of document.querySelectorAll('[data-span]')) {
    a.href = link(view, { span: a.dataset.span });
    a.toggleAttribute('aria-current', a.dataset.span === view.span);
  }
  for (const a of document.querySelectorAll('[data-by]')) {
    a.href = link(view, { by: a.dataset.by });
    a.toggleAttribute('aria-current', a.dataset.by === view.by);
  }
  $('all-clients').href = link(view, { client: '' });
  $('client-view').hidden = !view.client;
  $('top').hidden = Boolean(view.client);
  $('costs').hidden = Boolean(view.client);
  if ($('client-ip').textContent !== view.client) {
    $('client-ip').textContent = view.client;
    $('client-dns').textContent = '';
  }
  document.body.classList.toggle('one-client', Boolean(view.client));
}

// problems are the failures of the last loads of the view and of the live
// table, each cleared by the next load of its own that succeeds.
const problems = { view: '', live: '' };

function showProblem(source, err) {
  problems[source] = err ? String(err.message || err) : '';
  const text = Object.values(problems).filter(Boolean).join('; ');
  $('status').hidden = !text;
  $('status').textContent = text;
}

initTheme($('theme'));
onThemeChange(() => charts.forEach((c) => c.redraw()));
addEventListener('hashchange', () => {
  loadView();
  loadLive();
});
loadView();
loadLive();
setInterval(loadView, storedEvery);
setInterval(loadLive, liveEvery);

// What the page shows lives in its address, after the #: the span of the
// charts, whether the busiest are clients or prefixes, and the one client
// of a client's view. Links change it; the back button goes back.

// spans are the spans of the charts, as hostd's own UI offers them, with
// how the page names them.
export const spans = { '1d': '1 day', '7d': '7 days', '1m': '1 month', '3m': '3 months', '1y': '1 year', all: 'all time' };

const groupings = ['client', 'prefix'];

// readView returns the view the address asks for, defaults filled in.
export function readView() {
  const p = new URLSearchParams(location.hash.slice(1));
  return {
    span: Object.hasOwn(spans, p.get('span')) ? p.get('span') : '1d',
    by: groupings.includes(p.get('by')) ? p.get('by') : 'client',
    client: p.get('client') || '',
  };
}

// viewKey writes a view as the address holds it, without the #.
export function viewKey(view) {
  const p = new URLSearchParams({ span: view.span, by: view.by });
  if (view.client) {
    p.set('client', view.client);
  }
  return p.toString();
}

// link returns the address of view with changes made.
export function link(view, changes) {
  return '#' + viewKey({ ...view, ...changes });
}

// The stacked charts: for one direction, a bar per hour, day, week or
// month of a series report, the three classes stacked in it.

import { binaryTicks, formatBytes, formatTick } from './units.js';
import { color } from './theme.js';

// classes are the Sia classes, bottom of the stack first.
export const classes = ['consensus', 'siamux', 'quic'];

const height = 260;

// StackedChart is the chart of one direction ("up" or "down") in el.
export class StackedChart {
  constructor(el, dir) {
    this.el = el;
    this.dir = dir;
    this.plot = null;
    this.series = null;
    new ResizeObserver(() => this.plot?.setSize({ width: this.el.clientWidth, height })).observe(el);
  }

  // draw shows series (an answer of api/v1/series) and resolves once the
  // chart is on the page.
  draw(series) {
    this.series = series;
    return this.redraw();
  }

  // redraw draws the last series again, with the colours now in use.
  redraw() {
    if (!this.series) {
      return Promise.resolve();
    }
    this.plot?.destroy();
    const rows = this.series.rows;
    const own = classes.map((c) => rows.map((r) => r[`${c}_${this.dir}`]));
    // Bars are drawn in order, each from zero: the stack's top first, its
    // sum below it next, so each class shows as its own band. The legend
    // lists them in that order too, top of the stack first.
    const sums = own.map((_, k) => rows.map((_, i) => own.slice(0, k + 1).reduce((s, v) => s + v[i], 0)));
    const order = [...classes.keys()].reverse();
    const step = bucketStep(rows);
    const xs = barPositions(rows, step);
    const axis = { stroke: color('muted'), grid: { stroke: color('grid'), width: 1 }, ticks: { stroke: color('grid') } };
    return new Promise((drawn) => {
      this.plot = new uPlot({
        width: this.el.clientWidth,
        height,
        cursor: { sync: { key: 'traffic' }, points: { show: false } },
        scales: {
          x: { time: true, range: (u, lo, hi) => [lo - step / 2, hi + step / 2] },
          y: { range: (u, lo, hi) => [0, hi > 0 ? hi * 1.08 : 1024] },
        },
        axes: [
          axis,
          { ...axis, size: 76, incrs: binaryTicks, values: (u, ticks) => ticks.map(formatTick) },
        ],
        series: [
          // Away from the bars, the legend gives the span's totals.
          { label: this.series.by, value: (u, x, s, i) => (i == null ? 'whole span' : bucketLabel(rows[i], this.series.by)) },
          ...order.map((k) => ({
            label: classes[k],
            fill: color('c-' + classes[k]),
            stroke: color('c-' + classes[k]),
            width: 0,
            paths: uPlot.paths.bars({ size: [0.85, Infinity], gap: 1 }),
            points: { show: false },
            value: (u, v, s, i) => formatBytes(i == null ? this.series.total[`${classes[k]}_${this.dir}`] : own[k][i]),
          })),
        ],
        hooks: { draw: [() => drawn()] },
      }, [xs, ...order.map((k) => sums[k])], this.el);
    });
  }
}

// bucketStep is the seconds a whole bar stands for: the last row is cut
// at now.
function bucketStep(rows) {
  if (rows.length >= 2) {
    return (Date.parse(rows[1].start) - Date.parse(rows[0].start)) / 1000;
  }
  return rows.length === 1 ? (Date.parse(rows[0].end) - Date.parse(rows[0].start)) / 1000 || 3600 : 3600;
}

// barPositions places each bar in the middle of its period, so that it
// covers the time it counts.
function barPositions(rows, step) {
  return rows.map((r) => Date.parse(r.start) / 1000 + step / 2);
}

const hourLabel = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const dayLabel = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
const monthLabel = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'long' });

// bucketLabel says which hour, day, week or month a row is.
function bucketLabel(row, by) {
  const start = new Date(row.start);
  switch (by) {
    case 'hour':
      return hourLabel.format(start);
    case 'week':
      return 'week of ' + dayLabel.format(start);
    case 'month':
      return monthLabel.format(start);
  }
  return dayLabel.format(start);
}

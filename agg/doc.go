// Package agg moves what the kernel counted to the collector's consumers.
//
// An Aggregator drains the counters at wall-clock boundaries of its
// interval (every minute at :00 by default) and hands each closed period,
// a row per minute and client, to every consumer in turn: the database
// (store), the live table's totals (live), reverse DNS (dns), and whatever
// comes next, through one small interface, Consumer. Every client gets a
// row of its own until a period has more than MaxClientRows: then clients
// proven real keep theirs first, then the busiest, and the rest is added
// to the Other row, so a flood of forged addresses cannot fill the
// database. The rows are budgeted before any consumer sees the period, so
// every consumer gets the same rows. Proven clients, then those that had
// rows of their own, keep their place in the kernel's map (Seeder).
// A part that reads what a consumer keeps rather than the period, such as
// the sync reading what the database wrote, is hooked to that consumer
// (Then). The period still open, counted since the last drain, is offered
// to the live views (Open).
//
// Rows a consumer does not take (a locked, read-only or full disk) are
// kept in memory for that consumer alone, merged with later ones, bounded,
// and handed again on the next flush, so nothing counted is lost while the
// daemon runs and a failing consumer holds up no other.
package agg

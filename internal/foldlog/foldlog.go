// Package foldlog logs a run of periods whose row budget folded clients
// into 'other' once as it starts and once as it ends, with what was folded
// meanwhile, so that a flood lasting an hour writes two lines to the
// journal, not sixty.
package foldlog

import (
	"log/slog"
	"time"
)

// Episode tracks the folds of one row budget.
type Episode struct {
	Start, End string // the messages logged as a run starts and ends
	active     bool
	since      time.Time
	rows       int    // client rows folded in this run
	bytes      uint64 // and the bytes they held
}

// Update records that a period ending at now folded rows client rows
// holding bytes into 'other' (none: rows is 0).
func (e *Episode) Update(log *slog.Logger, now time.Time, rows int, bytes uint64, attrs ...any) {
	switch {
	case rows > 0 && !e.active:
		e.active, e.since, e.rows, e.bytes = true, now, rows, bytes
		log.Warn(e.Start, append(attrs, "folded_clients", rows, "folded_bytes", bytes)...)
	case rows > 0:
		e.rows += rows
		e.bytes += bytes
	case e.active:
		e.active = false
		log.Info(e.End, append(attrs, "folding_for", now.Sub(e.since).Round(time.Second),
			"folded_clients", e.rows, "folded_bytes", e.bytes)...)
	}
}

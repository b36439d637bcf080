// Package outage logs a run of failures of one kind once as it starts and
// once as it ends, not on every attempt, so that a database that stays
// locked for an hour writes two lines to the journal, not sixty.
package outage

import (
	"context"
	"log/slog"
	"time"
)

// Outage tracks one kind of failure.
type Outage struct {
	Start, End string // the messages logged as a run starts and ends
	failing    bool
	since      time.Time
}

// Update records the outcome of an attempt at time now. A failure because
// ctx is done says nothing about what was tried and is not logged.
func (o *Outage) Update(ctx context.Context, log *slog.Logger, now time.Time, err error, attrs ...any) {
	switch {
	case err != nil && !o.failing && ctx.Err() == nil:
		o.failing, o.since = true, now
		log.Warn(o.Start, append(attrs, "err", err)...)
	case err == nil && o.failing:
		o.failing = false
		log.Info(o.End, append(attrs, "failed_for", now.Sub(o.since).Round(time.Second))...)
	}
}

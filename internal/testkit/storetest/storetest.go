// Package storetest fills a database the way the daemon does, for the
// tests of what reads it: reports, the API, the dashboard.
package storetest

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// Fill stores periods through a real store as the daemon's flushes do,
// each with the store's clock at its end so that rollups and retention
// run as they would (minute rows are kept a week, so older traffic is read
// from the rollups), then an empty period from the last one's end up to
// now, then names. It returns the file's path.
func Fill(tb testing.TB, periods []traffic.Period, now time.Time, names ...traffic.Name) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "collector.db")
	var clock time.Time
	st, err := store.Open(path, store.Options{
		Log:       slog.New(slog.DiscardHandler),
		Retention: store.Retention{Minutes: 7 * 24 * time.Hour},
		Now:       func() time.Time { return clock },
	})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	if len(periods) > 0 {
		periods = append(periods, traffic.Period{Start: periods[len(periods)-1].End, End: now})
	}
	for _, p := range periods {
		clock = p.End
		if err := st.Consume(tb.Context(), p); err != nil {
			tb.Fatal(err)
		}
	}
	if err := st.SaveNames(tb.Context(), names); err != nil {
		tb.Fatal(err)
	}
	return path
}

// Minute is the period of the minute starting at at, holding samples.
func Minute(at time.Time, samples ...traffic.Sample) traffic.Period {
	p := traffic.Period{Start: at, End: at.Add(time.Minute)}
	for _, s := range samples {
		p.Rows = append(p.Rows, traffic.Row{Start: at, Client: s.Client, Traffic: s.Traffic})
	}
	return p
}

// Berlin is where the tests' operator lives: a zone with summer time, an
// hour off UTC.
var Berlin = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		panic(err)
	}
	return loc
}()

// Now is when the tests read: a Wednesday morning in Berlin.
var Now = time.Date(2026, 3, 4, 10, 30, 0, 0, Berlin)

// PeerSample is hostd's list of syncer peers as the daemon sampled it at
// At.
type PeerSample struct {
	At    time.Time
	Peers map[traffic.Client]store.Peering
}

// AddPeers stores samples in the file at path filled by Fill, as the
// daemon's peer sampler does: a sample of an hour or day already rolled
// up goes into its rollups too.
func AddPeers(tb testing.TB, path string, samples ...PeerSample) {
	tb.Helper()
	st, err := store.Open(path, store.Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	for _, s := range samples {
		if err := st.SavePeers(tb.Context(), s.At, s.Peers); err != nil {
			tb.Fatal(err)
		}
	}
}

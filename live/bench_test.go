package live

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/floodtest"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// BenchmarkPrintMillionClientsStored prints the live table with a day of
// a million forged clients stored, each with a row of its own: load-s is
// what the daemon's start spends reading today's busiest clients (once),
// ns/op what each print costs after it.
func BenchmarkPrintMillionClientsStored(b *testing.B) {
	path := filepath.Join(b.TempDir(), "flood.db")
	day := midnight(time.Now())
	if err := floodtest.WriteDay(b.Context(), path, 1_000_000, day); err != nil {
		b.Fatal(err)
	}
	st, err := store.OpenReadOnly(path)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()

	today := NewToday(0, nil)
	start := time.Now()
	if err := today.Load(b.Context(), st); err != nil {
		b.Fatal(err)
	}
	load := time.Since(start)
	live := peekFunc(func() ([]traffic.Sample, error) { return nil, nil })
	p := NewPrinter(live, today, io.Discard, time.Minute, slog.New(slog.DiscardHandler))
	for b.Loop() {
		if err := p.Print(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(load.Seconds(), "load-s")
}

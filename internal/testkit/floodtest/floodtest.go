// Package floodtest writes what a flood of forged source addresses leaves
// in a database, through the real aggregator and store, for the
// benchmarks that measure the readers against it.
package floodtest

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/back2basic/collector/agg"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// perFlush is how many clients one flush writes.
const perFlush = 100_000

// batches hands out the forged clients perFlush at a time.
type batches struct {
	next, total int
}

func (b *batches) Drain() ([]traffic.Sample, error) {
	n := min(perFlush, b.total-b.next)
	samples := make([]traffic.Sample, n)
	for i := range samples {
		samples[i] = traffic.Sample{Client: traffic.ClientOf(Addr(b.next + i))}
		samples[i].Traffic[traffic.QUIC][traffic.Down] = traffic.Tally{Bytes: uint64(1000 + (b.next+i)%500), Packets: 1}
	}
	b.next += n
	return samples, nil
}

// Addr is the i-th forged address, half IPv4 and half IPv6.
func Addr(i int) netip.Addr {
	if i%2 == 0 {
		j := i / 2
		return netip.AddrFrom4([4]byte{10, byte(j >> 16), byte(j >> 8), byte(j)})
	}
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xf1, 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
}

// WriteDay stores clients forged clients at the path's database, each with
// a minute row of its own on the morning of day (every client a row: as
// with a MAX_CLIENT_ROWS as large, or as a database written before the
// row budget existed).
func WriteDay(ctx context.Context, path string, clients int, day time.Time) error {
	st, err := store.Open(path, store.Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer st.Close()
	at := day.Add(time.Hour)
	a := agg.NewAggregator(&batches{total: clients}, agg.Config{
		Log:           slog.New(slog.DiscardHandler),
		Now:           func() time.Time { return at },
		MaxClientRows: perFlush,
	}, st)
	for written := 0; written < clients; written += perFlush {
		at = at.Add(time.Minute)
		if err := a.Flush(ctx); err != nil {
			return err
		}
	}
	return nil
}

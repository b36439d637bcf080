// Package live prints the traffic table to the journal: what each client
// moved since the last flush (read from the kernel without draining it) and
// what is stored for today.
//
// The lines keep the earlier tool's shape, which operators grep for:
//
//	---- LIVE TRAFFIC (semantic counters) ----
//	IPv4 10.20.31.114  consensus(down/up)=0 B/0 B  siamux(down/up)=748 B/26.07 KB  quic(down/up)=0 B/0 B
//	-------------------------------------------
package live

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/back2basic/collector/agg"
	"github.com/back2basic/collector/bpfgo"
)

// maxClients bounds the lines of a block, so a host with thousands of
// clients does not flood the journal every interval; the rest are counted on
// one line.
const maxClients = 50

const (
	liveTitle     = "---- LIVE TRAFFIC (semantic counters) ----"
	liveNone      = "---- LIVE TRAFFIC: no clients since the last flush ----"
	storedTitle   = "---- STORED TRAFFIC (aggregated today) ----"
	storedNone    = "---- STORED TRAFFIC: nothing stored today ----"
	footer        = "-------------------------------------------"
	overflowLabel = "---- other"
)

// Peeker reads the kernel's counters since the last drain without resetting
// them.
type Peeker interface {
	Peek() ([]bpfgo.Sample, error)
}

// StoredTotals sums the stored traffic per client over a span; *agg.Store
// implements it with the query `collector report` uses.
type StoredTotals interface {
	ClientTotals(ctx context.Context, q agg.Query) ([]agg.ClientTotal, error)
}

// Printer writes the live and stored traffic of every active client to a
// writer at a fixed interval.
type Printer struct {
	out      io.Writer
	live     Peeker
	stored   StoredTotals
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time // tests fix the day
}

// NewPrinter returns a Printer writing to out (the daemon passes os.Stderr,
// so each line lands in the journal) every interval, logging failures to
// log (nil: slog.Default()). "Today" starts at local midnight.
func NewPrinter(live Peeker, stored StoredTotals, out io.Writer, interval time.Duration, log *slog.Logger) *Printer {
	if log == nil {
		log = slog.Default()
	}
	return &Printer{out: out, live: live, stored: stored, log: log, interval: interval, now: time.Now}
}

// Run prints every interval until ctx is done, then returns nil. A failed
// round is logged and the next one tried.
func (p *Printer) Run(ctx context.Context) error {
	ticker := time.NewTicker(p.interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			if err := p.Print(ctx); err != nil && ctx.Err() == nil {
				p.log.Warn("print traffic", "err", err)
			}
		}
	}
}

// Print writes one round: the live block, then the block stored since local
// midnight, in a single Write so that concurrent log lines cannot land in
// between. A block whose source fails is left out and its error returned.
func (p *Printer) Print(ctx context.Context) error {
	var (
		b    bytes.Buffer
		errs []error
	)
	if samples, err := p.live.Peek(); err != nil {
		errs = append(errs, fmt.Errorf("peek live counters: %w", err))
	} else {
		writeBlock(&b, liveTitle, liveNone, samples)
	}
	now := p.now()
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, now.Location())
	today := agg.Query{Since: midnight, Until: midnight.AddDate(0, 0, 1)}
	if totals, err := p.stored.ClientTotals(ctx, today); err != nil {
		errs = append(errs, err)
	} else {
		samples := make([]bpfgo.Sample, len(totals))
		for i, t := range totals {
			samples[i] = bpfgo.Sample{Client: t.Client, Overflow: t.Overflow, Traffic: t.Traffic}
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		writeBlock(&b, storedTitle, storedNone, samples)
	}
	if b.Len() > 0 {
		if _, err := p.out.Write(b.Bytes()); err != nil {
			errs = append(errs, fmt.Errorf("write traffic table: %w", err))
		}
	}
	return errors.Join(errs...)
}

// writeBlock writes the clients that moved anything, busiest first, between
// title and the footer, or the single line none when there are none.
func writeBlock(b *bytes.Buffer, title, none string, samples []bpfgo.Sample) {
	active := make([]bpfgo.Sample, 0, len(samples))
	for _, s := range samples {
		if !s.Traffic.IsZero() {
			active = append(active, s)
		}
	}
	if len(active) == 0 {
		b.WriteString(none + "\n")
		return
	}
	slices.SortFunc(active, func(x, y bpfgo.Sample) int {
		return cmp.Or(cmp.Compare(y.Traffic.Bytes(), x.Traffic.Bytes()), x.Client.Compare(y.Client))
	})
	b.WriteString(title + "\n")
	for i := range active {
		if i == maxClients {
			fmt.Fprintf(b, "... and %d more clients\n", len(active)-maxClients)
			break
		}
		writeClient(b, &active[i])
	}
	b.WriteString(footer + "\n")
}

// writeClient writes one client's line.
func writeClient(b *bytes.Buffer, s *bpfgo.Sample) {
	switch {
	case s.Overflow || !s.Client.IsValid():
		b.WriteString(overflowLabel)
	case s.Client.Is4():
		b.WriteString("IPv4 " + s.Client.String())
	default:
		b.WriteString("IPv6 " + s.Client.String())
	}
	for c := range bpfgo.NumClasses {
		t := &s.Traffic[c]
		fmt.Fprintf(b, "  %s(down/up)=%s/%s", c, FormatBytes(t[bpfgo.Down].Bytes), FormatBytes(t[bpfgo.Up].Bytes))
	}
	b.WriteByte('\n')
}

var units = [...]string{"KB", "MB", "GB", "TB"}

// FormatBytes writes n in decimal units with two decimals, as the earlier
// tool did: "748 B", "26.07 KB", "1.50 GB". Amounts past 999.99 TB stay in
// TB.
func FormatBytes(n uint64) string {
	if n < 1000 {
		return strconv.FormatUint(n, 10) + " B"
	}
	v, unit := float64(n)/1000, 0
	// Compare with what two decimals round to, so 999,999 B reads
	// "1.00 MB" rather than "1000.00 KB".
	for v >= 999.995 && unit < len(units)-1 {
		v /= 1000
		unit++
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + " " + units[unit]
}

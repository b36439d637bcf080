// Package live prints the traffic table to the journal: what each client
// moved since the last flush (the open period, which the aggregator reads
// from the kernel without draining it) and what is stored for today.
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

	"github.com/back2basic/collector/traffic"
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
	// untrackedLabel sums the clients of the day past what Today tracks
	// one by one.
	untrackedLabel = "---- more clients"
)

// Counting offers the open period: what the kernel counted since the
// last drain, not handed to any consumer yet. agg.Aggregator's Open does.
type Counting interface {
	Open() (traffic.OpenPeriod, error)
}

// Printer writes the live and stored traffic of every active client to a
// writer at a fixed interval.
type Printer struct {
	out      io.Writer
	live     Counting
	today    *Today
	log      *slog.Logger
	interval time.Duration
}

// NewPrinter returns a Printer of the open period of live and of today,
// writing to out (the daemon passes os.Stderr, so each line lands in the
// journal) every interval, logging failures to log (nil: slog.Default()).
func NewPrinter(live Counting, today *Today, out io.Writer, interval time.Duration, log *slog.Logger) *Printer {
	if log == nil {
		log = slog.Default()
	}
	return &Printer{out: out, live: live, today: today, log: log, interval: interval}
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
// Both come from memory: the kernel map, bounded by MAX_CLIENTS, and
// Today, bounded too.
func (p *Printer) Print(ctx context.Context) error {
	var (
		b    bytes.Buffer
		errs []error
	)
	if open, err := p.live.Open(); err != nil {
		errs = append(errs, fmt.Errorf("peek live counters: %w", err))
	} else {
		writeBlock(&b, liveTitle, liveNone, open.Samples, traffic.Traffic{})
		b.WriteByte('\n')
	}
	samples, untracked := p.today.samples()
	writeBlock(&b, storedTitle, storedNone, samples, untracked)
	if _, err := p.out.Write(b.Bytes()); err != nil {
		errs = append(errs, fmt.Errorf("write traffic table: %w", err))
	}
	return errors.Join(errs...)
}

// writeBlock writes the clients that moved anything, busiest first, between
// title and the footer, or the single line none when there are none; then
// the traffic of clients not tracked one by one, if any.
func writeBlock(b *bytes.Buffer, title, none string, samples []traffic.Sample, untracked traffic.Traffic) {
	active := make([]traffic.Sample, 0, len(samples))
	for _, s := range samples {
		if !s.Traffic.IsZero() {
			active = append(active, s)
		}
	}
	if len(active) == 0 && untracked.IsZero() {
		b.WriteString(none + "\n")
		return
	}
	slices.SortFunc(active, func(x, y traffic.Sample) int {
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
	if !untracked.IsZero() {
		writeTraffic(b, untrackedLabel, &untracked)
	}
	b.WriteString(footer + "\n")
}

// writeClient writes one client's line.
func writeClient(b *bytes.Buffer, s *traffic.Sample) {
	switch {
	case s.Client.IsOther():
		writeTraffic(b, overflowLabel, &s.Traffic)
	case s.Client.Addr().Is4():
		writeTraffic(b, "IPv4 "+s.Client.String(), &s.Traffic)
	default:
		writeTraffic(b, "IPv6 "+s.Client.String(), &s.Traffic)
	}
}

// writeTraffic writes one line: label, then each class down and up.
func writeTraffic(b *bytes.Buffer, label string, tr *traffic.Traffic) {
	b.WriteString(label)
	for c := range traffic.NumClasses {
		t := &tr[c]
		fmt.Fprintf(b, "  %s(down/up)=%s/%s", c, FormatBytes(t[traffic.Down].Bytes), FormatBytes(t[traffic.Up].Bytes))
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

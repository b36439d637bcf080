package live

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/golden"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// client is the client at addr.
func client(addr string) traffic.Client {
	return traffic.ClientOf(netip.MustParseAddr(addr))
}

// peekFunc offers the samples it returns as the open period.
type peekFunc func() ([]traffic.Sample, error)

func (f peekFunc) Open() (traffic.OpenPeriod, error) {
	samples, err := f()
	return traffic.OpenPeriod{Samples: samples}, err
}

// topClients is a report.Source answering TopClients from a prepared Top
// and recording the query it was asked; today's totals ask nothing else.
type topClients struct {
	top   store.Top
	err   error
	query store.Query
	n     int
}

func (s *topClients) TopClients(_ context.Context, q store.Query, n int, _ []traffic.Class) (store.Top, error) {
	s.query, s.n = q, n
	return s.top, s.err
}

func (s *topClients) Series(context.Context, store.Query, store.Period, *time.Location) ([]store.Bucket, error) {
	return nil, errors.New("today's totals asked for a series")
}

// countingWriter records every Write call.
type countingWriter struct {
	mu     sync.Mutex
	writes int
	buf    bytes.Buffer
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	return w.buf.Write(p)
}

// siamux returns Traffic with only siamux bytes and a packet per 1000 bytes.
func siamux(down, up uint64) traffic.Traffic {
	var t traffic.Traffic
	t[traffic.Siamux][traffic.Down] = traffic.Tally{Bytes: down, Packets: down/1000 + 1}
	t[traffic.Siamux][traffic.Up] = traffic.Tally{Bytes: up, Packets: up/1000 + 1}
	return t
}

// every returns Traffic with each class and direction set, from base on.
func every(base uint64) traffic.Traffic {
	var t traffic.Traffic
	for c := range t {
		for d := range t[c] {
			t[c][d] = traffic.Tally{Bytes: base * uint64(1+c*2+d), Packets: 1}
		}
	}
	return t
}

// now is 09:30 in a zone ahead of UTC, so that local midnight differs from
// UTC midnight.
var now = time.Date(2026, 3, 1, 9, 30, 0, 0, time.FixedZone("UTC+2", 2*3600))

// today returns a Today at now holding what st answers.
func today(t *testing.T, st *topClients) *Today {
	t.Helper()
	d := NewToday(0, func() time.Time { return now })
	if err := d.Load(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	// The day so far, the minute being counted included.
	midnight := time.Date(2026, 3, 1, 0, 0, 0, 0, now.Location())
	end := now.Truncate(time.Minute).Add(time.Minute)
	if q := st.query; !q.Since.Equal(midnight) || !q.Until.Equal(end) || len(q.Clients) != 0 || st.n != DefaultTracked {
		t.Errorf("today's totals asked for %+v, top %d; want from %v to %v, top %d", q, st.n, midnight, end, DefaultTracked)
	}
	return d
}

func printRound(t *testing.T, live peekFunc, d *Today) (string, error) {
	t.Helper()
	var w countingWriter
	p := NewPrinter(live, d, &w, time.Second, slog.New(slog.DiscardHandler))
	err := p.Print(t.Context())
	if w.writes > 1 {
		t.Errorf("%d Write calls, want one per round", w.writes)
	}
	return w.buf.String(), err
}

// The earlier tool's output, verbatim: operators' greps depend on it.
func TestPrintKeepsEarlierShape(t *testing.T) {
	renter := client("10.20.31.114")
	got, err := printRound(t,
		func() ([]traffic.Sample, error) {
			return []traffic.Sample{{Client: renter, Traffic: siamux(748, 26070)}}, nil
		},
		today(t, &topClients{top: store.Top{Clients: []store.ClientTotal{{Client: renter, Traffic: siamux(1460, 52130)}}}}))
	if err != nil {
		t.Fatal(err)
	}
	want := `---- LIVE TRAFFIC (semantic counters) ----
IPv4 10.20.31.114  consensus(down/up)=0 B/0 B  siamux(down/up)=748 B/26.07 KB  quic(down/up)=0 B/0 B
-------------------------------------------

---- STORED TRAFFIC (aggregated today) ----
IPv4 10.20.31.114  consensus(down/up)=0 B/0 B  siamux(down/up)=1.46 KB/52.13 KB  quic(down/up)=0 B/0 B
-------------------------------------------
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestPrintGolden(t *testing.T) {
	many := make([]traffic.Sample, maxClients+12)
	for i := range many {
		many[i] = traffic.Sample{
			Client:  traffic.ClientOf(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})),
			Traffic: siamux(uint64(i)*1000, uint64(i)*1_000_000),
		}
	}
	mixed := []traffic.Sample{
		{Client: client("192.0.2.20"), Traffic: siamux(5000, 5000)},
		{Client: client("2001:db8::1"), Traffic: every(3_000_000_000)},
		{Client: traffic.Other, Traffic: every(12_345)},
		{Client: client("192.0.2.3")}, // nothing moved: left out
		{Client: client("192.0.2.10"), Traffic: siamux(5000, 5000)},
	}
	tests := []struct {
		name    string
		live    []traffic.Sample
		peekErr error
		stored  store.Top
		wantErr string
	}{
		{
			name: "mixed",
			live: mixed,
			stored: store.Top{Clients: []store.ClientTotal{
				{Client: client("2001:db8::1"), DNS: "a.example", Traffic: every(7_000_000_000_000)},
				{Client: traffic.Other, Traffic: every(999_995)},
			}},
		},
		{name: "empty"},
		{name: "capped", live: many},
		{
			name:    "peek fails",
			peekErr: errors.New("read map: operation not permitted"),
			stored:  store.Top{Clients: []store.ClientTotal{{Client: client("192.0.2.1"), Traffic: siamux(1, 2)}}},
			wantErr: "peek live counters: read map: operation not permitted",
		},
		{
			name: "untracked",
			stored: store.Top{
				Clients:     []store.ClientTotal{{Client: client("192.0.2.1"), Traffic: siamux(9000, 9000)}},
				Rest:        every(3),
				RestClients: 1_000_000,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := printRound(t, func() ([]traffic.Sample, error) { return tt.live, tt.peekErr }, today(t, &topClients{top: tt.stored}))
			if tt.wantErr == "" && err != nil {
				t.Errorf("Print: %v", err)
			}
			if tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Errorf("Print error = %v, want %q", err, tt.wantErr)
			}
			golden.Check(t, tt.name, got)
		})
	}
}

func TestFormatBytes(t *testing.T) {
	tests := []struct {
		n    uint64
		want string
	}{
		{0, "0 B"},
		{748, "748 B"},
		{999, "999 B"},
		{1000, "1.00 KB"},
		{1460, "1.46 KB"},
		{26_070, "26.07 KB"},
		{999_994, "999.99 KB"},
		{999_995, "1.00 MB"}, // not "1000.00 KB"
		{1_500_000, "1.50 MB"},
		{2_345_678_901, "2.35 GB"},
		{999_999_999_999, "1.00 TB"},
		{7_000_000_000_000, "7.00 TB"},
		{1<<64 - 1, "18446744.07 TB"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := FormatBytes(tt.n); got != tt.want {
				t.Errorf("FormatBytes(%d) = %q, want %q", tt.n, got, tt.want)
			}
		})
	}
}

func TestRunPrintsUntilDone(t *testing.T) {
	var w countingWriter
	p := NewPrinter(peekFunc(func() ([]traffic.Sample, error) { return nil, nil }), NewToday(0, nil),
		&w, 10*time.Millisecond, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.writes < 3 {
		t.Errorf("%d rounds printed in 100 ms at a 10 ms interval", w.writes)
	}
	if !strings.HasPrefix(w.buf.String(), liveNone+"\n\n"+storedNone+"\n") {
		t.Errorf("output starts %q", w.buf.String())
	}
}

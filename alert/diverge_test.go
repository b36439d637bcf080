package alert

import (
	"encoding/json"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/syncbuf"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// rhpLive is when the divergence tests' detectors start, after two days
// of history from day0.
var rhpLive = day0.AddDate(0, 0, 2)

// span is [from, to); the zero span holds nothing.
type span struct{ from, to time.Time }

func (s span) holds(t time.Time) bool { return !t.Before(s.from) && t.Before(s.to) }

// rhpWorld makes up a host's RHP traffic, minute by minute, and what hostd
// counts of it, period by period: hostd writes its counters once a minute,
// so each of its periods holds the payload of the minute before it and
// not that of its last minute; the wire carries the payload and 2 to 10%
// more (headers, acknowledgements, handshakes), more on small transfers.
type rhpWorld struct {
	quic    span   // QUIC renters from then on (siamux ones all the time)
	noQUIC  bool   // hostd counts no QUIC payload (before 2.6.0)
	stalled span   // hostd's periods starting in it count nothing
	storm   span   // the wire carries 3 times the usual in it
	unread  span   // hostd is not read in it: its periods arrive at its end
	down    []span // the daemon counts nothing in them
}

// payload returns the siamux and QUIC payload of minute m: 2 to 14 MB a
// minute, and next to nothing from 02:00 to 04:00, too little to judge.
func (w rhpWorld) payload(m time.Time) (siamux, quic uint64) {
	bytes := 2e6 + 12e6*noise(m, 7)
	if h := m.UTC().Hour(); h >= 2 && h < 4 {
		bytes /= 100
	}
	siamux = uint64(bytes)
	if w.quic.holds(m) {
		quic = uint64(bytes * (0.8 + 0.8*noise(m, 8)))
	}
	return siamux, quic
}

// onWire returns the wire bytes of minute m.
func (w rhpWorld) onWire(m time.Time) (siamux, quic uint64) {
	overhead := 1.02 + 0.08*noise(m, 9)
	if w.storm.holds(m) {
		overhead *= 3
	}
	s, q := w.payload(m)
	return uint64(float64(s) * overhead), uint64(float64(q) * overhead)
}

// hostdCounts returns what hostd counts in the period starting at start.
func (w rhpWorld) hostdCounts(start time.Time) store.HostdFigures {
	f := store.HostdFigures{Start: start, Periods: 1, Version: "v2.10.2", QUIC: !w.noQUIC}
	if w.stalled.holds(start) {
		return f
	}
	for m := start.Add(-time.Minute); m.Before(start.Add(HostdPeriod - time.Minute)); m = m.Add(time.Minute) {
		s, q := w.payload(m)
		if w.noQUIC {
			q = 0
		}
		// Uploads and downloads alike.
		f.RHP.Ingress += (s + q) / 2
		f.RHP.Egress += s + q - (s+q)/2
	}
	return f
}

// runRHP writes the minutes [from, to) of w into st and hands each to d,
// if any, as a closed period, as the aggregator does; a minute after each
// of hostd's periods ends it stores what hostd counted of it and hands
// that to d, as the hostd reader does, or, while hostd is unread, once it
// is read again.
func runRHP(t *testing.T, st *store.Store, d *Detector, w rhpWorld, from, to time.Time) {
	t.Helper()
	var (
		rows   []traffic.Row
		stored []store.HostdFigures
		unread []store.HostdFigures
	)
	// The rows and periods are written a few hours at a time, all of
	// them before it returns: a detector loaded then reads them all.
	write := func() {
		if err := st.Write(t.Context(), rows); err != nil {
			t.Fatal(err)
		}
		if err := st.WriteHostdPeriods(t.Context(), stored); err != nil {
			t.Fatal(err)
		}
		rows, stored = rows[:0], stored[:0]
	}
	hostd := func(periods ...store.HostdFigures) {
		stored = append(stored, periods...)
		if d != nil {
			d.Hostd(periods)
		}
	}
	for m := from; m.Before(to); m = m.Add(time.Minute) {
		if !slices.ContainsFunc(w.down, func(s span) bool { return s.holds(m) }) {
			var tr traffic.Traffic
			s, q := w.onWire(m)
			tr[traffic.Siamux][traffic.Down].Bytes, tr[traffic.Siamux][traffic.Up].Bytes = s/2, s-s/2
			tr[traffic.QUIC][traffic.Down].Bytes, tr[traffic.QUIC][traffic.Up].Bytes = q/2, q-q/2
			p := traffic.Period{Start: m, End: m.Add(time.Minute), Rows: []traffic.Row{{Start: m, Client: renter, Traffic: tr}}}
			rows = append(rows, p.Rows...)
			if d != nil {
				if err := d.Consume(t.Context(), p); err != nil {
					t.Fatal(err)
				}
			}
		}
		if len(rows) >= 1440 {
			write()
		}
		if m.Unix()%300 != 60 {
			continue
		}
		f := w.hostdCounts(m.Add(-HostdPeriod - time.Minute))
		switch {
		case w.unread.holds(m):
			unread = append(unread, f)
		case len(unread) > 0:
			hostd(append(unread, f)...)
			unread = nil
		default:
			hostd(f)
		}
	}
	write()
}

// withRHPHistory returns a database holding two days of w before
// rhpLive, and a function that starts a detector on it, its divergence
// alert as cfg says, the spikes off, telling rec.
func withRHPHistory(t *testing.T, w rhpWorld) (*store.Store, *recorder, func(Divergence, time.Time, *slog.Logger) *Detector) {
	t.Helper()
	st := openStore(t)
	runRHP(t, st, nil, w, day0, rhpLive)
	rec := &recorder{}
	return st, rec, func(cfg Divergence, now time.Time, log *slog.Logger) *Detector {
		return load(t, st, Config{Spike: Spike{Off: true}, Divergence: cfg, Notify: rec, Log: log}, now)
	}
}

// stalledFor starts a detector at rhpLive, logging to log, on two days of
// usual history, and runs it until hostd's counters have stalled for
// lasting. It returns what withRHPHistory does, the detector, and the
// world, whose stall begins 10 hours after rhpLive and lasts an hour.
func stalledFor(t *testing.T, lasting time.Duration, log *slog.Logger) (*store.Store, *recorder, func(Divergence, time.Time, *slog.Logger) *Detector, *Detector, rhpWorld) {
	t.Helper()
	w := rhpWorld{}
	st, rec, open := withRHPHistory(t, w)
	d := open(Divergence{}, rhpLive, log)
	w.stalled = span{rhpLive.Add(10 * time.Hour), rhpLive.Add(11 * time.Hour)}
	runRHP(t, st, d, w, rhpLive, w.stalled.from.Add(lasting))
	return st, rec, open, d, w
}

// checkDivergence fails unless alerts are one divergence firing, for
// reason, from first, and one resolving after it.
func checkDivergence(t *testing.T, alerts []Alert, reason string, first time.Time) {
	t.Helper()
	checkOnce(t, alerts, RHPSubject)
	for _, a := range alerts {
		if a.Kind != HostdDivergence || a.Divergence == nil || a.Divergence.Reason != reason || !a.StartedAt.Equal(first) {
			t.Errorf("alert %+v, details %+v: want a divergence for %s from %v", a, a.Divergence, reason, first)
		}
	}
}

// Two days as usual, with the quiet hours of the night too small to
// judge, hostd's counters one minute behind the wire's, and the overhead
// changing from minute to minute, alert nothing.
func TestDivergenceNoAlertOnUsualTraffic(t *testing.T) {
	w := rhpWorld{quic: span{day0, rhpLive.AddDate(0, 0, 2)}}
	st, rec, open := withRHPHistory(t, w)
	d := open(Divergence{}, rhpLive, discard)
	runRHP(t, st, d, w, rhpLive, rhpLive.AddDate(0, 0, 2))
	if got := rec.list(); len(got) != 0 {
		t.Errorf("alerts on usual traffic: %+v", events(got))
	}
	b := d.divergence.band(periodSlot(rhpLive.AddDate(0, 0, 2)))
	t.Logf("usual ratio %.3f, band %.3f to %.3f", math.Exp(b.level), math.Exp(b.low), math.Exp(b.high))
	if !b.ok || math.Exp(b.level) < 1.02 || math.Exp(b.level) > 1.1 {
		t.Errorf("usual ratio %.3f (band learned: %v), want the wire's overhead, 1.02 to 1.1", math.Exp(b.level), b.ok)
	}
}

// hostd's counters stalled (reachable, its totals not moving) while RHP
// traffic flows: the alert fires once, on the third period, and resolves
// once hostd counts again for three periods; the journal says both.
func TestDivergenceHostdStalls(t *testing.T) {
	var journal syncbuf.Buffer
	st, rec, _, d, w := stalledFor(t, 20*time.Minute, slog.New(slog.NewTextHandler(&journal, nil)))
	active := d.Active()
	if len(active) != 1 || active[0].Kind != HostdDivergence {
		t.Fatalf("active after 4 stalled periods: %+v, want the divergence", events(active))
	}
	stall := w.stalled
	runRHP(t, st, d, w, stall.from.Add(20*time.Minute), stall.to.Add(time.Hour))

	alerts := rec.list()
	checkDivergence(t, alerts, HostdCountsNone, stall.from)
	if fired := alerts[0].Divergence; fired.Periods != 3 || fired.Ratio != nil || fired.HostdBytes != 0 || fired.WireBytes < DefaultDivergenceMinBytes ||
		!fired.PeriodStart.Equal(stall.from.Add(2*HostdPeriod)) {
		t.Errorf("fired with %+v: want the third period, wire bytes and none counted", fired)
	}
	if resolved := alerts[1]; !resolved.ResolvedAt.Equal(stall.to.Add(3 * HostdPeriod)) {
		t.Errorf("resolved at %v, want the end of the third period counted again, %v", resolved.ResolvedAt, stall.to.Add(3*HostdPeriod))
	}
	if len(d.Active()) != 0 {
		t.Errorf("still active: %+v", events(d.Active()))
	}
	var warnings []string
	for _, line := range strings.Split(journal.String(), "\n") {
		if strings.Contains(line, "level=WARN") {
			warnings = append(warnings, line)
		}
	}
	if len(warnings) != 2 || !strings.Contains(warnings[0], "reason=hostd_counts_none") || !strings.Contains(warnings[1], "back to their usual ratio") {
		t.Errorf("journal warnings:\n%s\nwant the divergence firing, then resolving", strings.Join(warnings, "\n"))
	}
	// What the webhook posts and the database keeps reads back whole.
	var back Alert
	if err := json.Unmarshal(saved(alerts[0]).Payload, &back); err != nil || back.details() != 1 || back.Divergence.Reason != HostdCountsNone {
		t.Errorf("saved %s: read back %+v, %v", saved(alerts[0]).Payload, back, err)
	}
}

// A retransmission storm, three times the wire bytes for the same
// payload, fires "wire above payload" against the usual ratio.
func TestDivergenceWireFarAbovePayload(t *testing.T) {
	storm := span{rhpLive.Add(14 * time.Hour), rhpLive.Add(15 * time.Hour)}
	w := rhpWorld{}
	st, rec, open := withRHPHistory(t, w)
	d := open(Divergence{}, rhpLive, discard)
	w.storm = storm
	runRHP(t, st, d, w, rhpLive, storm.to.Add(time.Hour))
	// hostd's periods are a minute behind the wire: the storm's first
	// period holds one minute of usual payload against a stormy wire.
	checkDivergence(t, rec.list(), WireAbovePayload, storm.from)
	fired := rec.list()[0].Divergence
	if fired.Ratio == nil || fired.Usual == nil || *fired.Ratio < 2 || *fired.Usual > 1.1 || *fired.High > *fired.Ratio {
		t.Errorf("fired with %+v: want a ratio near 3 above the band of a usual ratio near 1.06", fired)
	}
}

// A hostd before 2.6.0 counts no QUIC: once QUIC renters come, the wire
// carries far more than hostd counts, and the alert fires; on a host with
// RHP over QUIC alone, hostd counts none of it.
func TestDivergenceHostdWithoutQUIC(t *testing.T) {
	quic := span{rhpLive.Add(12 * time.Hour), rhpLive.AddDate(0, 0, 1)}
	w := rhpWorld{noQUIC: true}
	st, rec, open := withRHPHistory(t, w)
	d := open(Divergence{}, rhpLive, discard)
	w.quic = quic
	runRHP(t, st, d, w, rhpLive, quic.to)
	alerts := rec.list()
	if len(alerts) == 0 || alerts[0].Divergence.Reason != WireAbovePayload || alerts[0].StartedAt.Before(quic.from) {
		t.Fatalf("alerts %+v: want a divergence, wire above payload, once QUIC renters come", events(alerts))
	}
}

// hostd unreachable for two hours is no divergence: its periods are not
// judged until it is read again, and then judged against the wire of
// their own minutes. Neither is a daemon down for three minutes of three
// periods in a row, whose wire is not whole.
func TestDivergenceNotOnOutages(t *testing.T) {
	w := rhpWorld{}
	st, rec, open := withRHPHistory(t, w)
	d := open(Divergence{}, rhpLive, discard)
	w.unread = span{rhpLive.Add(9 * time.Hour), rhpLive.Add(11 * time.Hour)}
	for i := range 3 {
		from := rhpLive.Add(13*time.Hour + time.Duration(i)*HostdPeriod + 2*time.Minute)
		w.down = append(w.down, span{from, from.Add(3 * time.Minute)})
	}
	runRHP(t, st, d, w, rhpLive, rhpLive.Add(16*time.Hour))
	if got := rec.list(); len(got) != 0 {
		t.Errorf("alerts over outages: %+v", events(got))
	}
	// Yet a stall hidden in the outage of hostd's is seen once it is read.
	w.stalled = span{rhpLive.Add(17 * time.Hour), rhpLive.Add(18 * time.Hour)}
	w.unread = span{rhpLive.Add(16 * time.Hour), rhpLive.Add(19 * time.Hour)}
	runRHP(t, st, d, w, rhpLive.Add(16*time.Hour), rhpLive.Add(20*time.Hour))
	checkDivergence(t, rec.list(), HostdCountsNone, w.stalled.from)
}

// A restart while the divergence fires neither raises it again nor
// forgets it: the next run resolves it once hostd counts again.
func TestDivergenceAcrossRestart(t *testing.T) {
	st, rec, open, _, w := stalledFor(t, 30*time.Minute, discard)
	stall := w.stalled
	restart := stall.from.Add(30 * time.Minute)
	d := open(Divergence{}, restart, discard)
	if got := d.Active(); len(got) != 1 || got[0].Kind != HostdDivergence {
		t.Fatalf("active after the restart: %+v, want the divergence", events(got))
	}
	runRHP(t, st, d, w, restart, stall.to.Add(time.Hour))
	checkDivergence(t, rec.list(), HostdCountsNone, stall.from)
}

// Without history, a ratio far from any usual one cannot be told, but
// RHP traffic hostd counts none of can; and periods sets how many in a
// row fire and resolve.
func TestDivergenceWithoutHistory(t *testing.T) {
	st := openStore(t)
	rec := &recorder{}
	d := load(t, st, Config{Spike: Spike{Off: true}, Divergence: Divergence{Periods: 1}, Notify: rec}, rhpLive)
	w := rhpWorld{storm: span{rhpLive.Add(time.Hour), rhpLive.Add(2 * time.Hour)}}
	runRHP(t, st, d, w, rhpLive, rhpLive.Add(7*time.Hour))
	if got := rec.list(); len(got) != 0 {
		t.Fatalf("alerts without a usual ratio: %+v", events(got))
	}
	w.stalled = span{rhpLive.Add(8 * time.Hour), rhpLive.Add(8*time.Hour + 5*time.Minute)}
	runRHP(t, st, d, w, rhpLive.Add(7*time.Hour), rhpLive.Add(9*time.Hour))
	checkDivergence(t, rec.list(), HostdCountsNone, w.stalled.from)
	if a := rec.list()[1]; !a.ResolvedAt.Equal(w.stalled.to.Add(HostdPeriod)) {
		t.Errorf("resolved at %v, want one period after the stall, %v", a.ResolvedAt, w.stalled.to.Add(HostdPeriod))
	}
}

// Turned off, it reads nothing and alerts nothing; one that fired before
// resolves at the start.
func TestDivergenceOff(t *testing.T) {
	st, rec, open, _, w := stalledFor(t, 30*time.Minute, discard)
	stall := w.stalled
	d := open(Divergence{Off: true}, stall.from.Add(30*time.Minute), discard)
	runRHP(t, st, d, w, stall.from.Add(30*time.Minute), stall.to)
	got := events(rec.list())
	if len(got) != 2 || got[0].status != Firing || got[1].status != Resolved || len(d.Active()) != 0 {
		t.Errorf("alerts %+v, active %+v: want the one fired, resolved as the alert was turned off", got, events(d.Active()))
	}
}

package alert

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/syncbuf"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// spiker is the peer that misbehaves, and its spike.
var (
	spiker     = peers[3]
	spikeStart = live.Add(10 * time.Hour)
	spike      = burst{client: spiker, from: spikeStart, to: spikeStart.Add(15 * time.Minute), rate: 1_000_000}
)

// withHistory returns a detector loaded at live from a database holding
// the week before, what it notified, and a function that starts another
// detector on the same database and recorder, as a restart does.
func withHistory(t *testing.T) (*Detector, *recorder, func(Config, time.Time) *Detector) {
	t.Helper()
	st := openHistory(t)
	rec := &recorder{}
	open := func(cfg Config, now time.Time) *Detector {
		cfg.Notify = rec
		return load(t, st, cfg, now)
	}
	return open(Config{}, live), rec, open
}

// checkOnce fails unless alerts hold one firing then one resolution,
// under one id, for each subject of want, and nothing else.
func checkOnce(t *testing.T, alerts []Alert, want ...string) {
	t.Helper()
	byID := map[string][]Alert{}
	var subjects []string
	for _, a := range alerts {
		if len(byID[a.ID]) == 0 {
			subjects = append(subjects, a.Subject)
		}
		byID[a.ID] = append(byID[a.ID], a)
	}
	slices.Sort(subjects)
	slices.Sort(want)
	if !slices.Equal(subjects, want) {
		t.Fatalf("alerts of %q, want one each of %q: %+v", subjects, want, events(alerts))
	}
	for id, as := range byID {
		if got := events(as); len(got) != 2 || got[0].status != Firing || got[1].status != Resolved {
			t.Errorf("alert %s: %+v, want one firing then one resolved", id, got)
		}
	}
}

// inStore runs the minutes [from, to) of w through the store and d.
func inStore(t *testing.T, d *Detector, w world, from, to time.Time) {
	t.Helper()
	run(t, d.cfg.Store.(*store.Store), d, w, from, to)
}

func TestSpikeFiresOnceAndResolvesOnce(t *testing.T) {
	_, rec, open := withHistory(t)
	var journal syncbuf.Buffer
	d := open(Config{Log: slog.New(slog.NewTextHandler(&journal, nil))}, live)
	w := world{bursts: []burst{spike}}
	inStore(t, d, w, live, spikeStart.Add(10*time.Minute))
	if got := d.Active(); len(got) != 2 {
		t.Errorf("%d alerts active during the spike, want the host's and the client's: %+v", len(got), events(got))
	}
	inStore(t, d, w, spikeStart.Add(10*time.Minute), live.Add(14*time.Hour))

	alerts := rec.list()
	checkOnce(t, alerts, HostSubject, spiker.String())
	for _, a := range alerts {
		s := a.Spike
		if !a.StartedAt.Equal(spikeStart) || s == nil || s.Class != traffic.Consensus || s.Rate < 1_000_000 || s.Peak < s.Rate {
			t.Errorf("alert %+v %+v: want a consensus spike from %v at 1 MB/s or more", a, s, spikeStart)
			continue
		}
		if len(s.Clients) == 0 || s.Clients[0] != spiker {
			t.Errorf("alert of %s names clients %v, want %v first", a.Subject, s.Clients, spiker)
		}
		if s.Threshold != DefaultMinRate || s.Baseline > 30_000 {
			t.Errorf("alert of %s: baseline %.0f, threshold %.0f; want the usual rate and the minimum rate", a.Subject, s.Baseline, s.Threshold)
		}
		if a.Status == Resolved && !a.ResolvedAt.Equal(spike.to.Add(DefaultResolve)) {
			t.Errorf("alert of %s resolved at %v, want %v", a.Subject, a.ResolvedAt, spike.to.Add(DefaultResolve))
		}
	}
	if got := d.Active(); len(got) != 0 {
		t.Errorf("alerts still active: %+v", events(got))
	}

	var warnings []string
	for _, line := range strings.Split(journal.String(), "\n") {
		if strings.Contains(line, "level=WARN") {
			warnings = append(warnings, line)
		}
	}
	if len(warnings) != 4 {
		t.Fatalf("journal warnings:\n%s\nwant one per alert firing and resolving", strings.Join(warnings, "\n"))
	}
	for _, w := range warnings {
		for _, want := range []string{"msg=\"consensus traffic spike", "clients=", spiker.String(), "class=consensus", "rate_bytes_per_second=", "baseline_bytes_per_second="} {
			if !strings.Contains(w, want) {
				t.Errorf("journal line %s does not say %s", w, want)
			}
		}
	}
}

// The usual rise and fall over a day, and one minute far above it, alert
// nothing, even with no minimum rate to hide behind: the baseline of each
// hour is learned from the same hour of the stored days.
func TestNoAlertOnUsualTraffic(t *testing.T) {
	_, rec, open := withHistory(t)
	d := open(Config{Spike: Spike{MinRate: 1}}, live)
	noisy := live.Add(14*time.Hour + 37*time.Minute)
	w := world{bursts: []burst{{client: peers[0], from: noisy, to: noisy.Add(time.Minute), rate: 50 * hostRate(noisy)}}}
	inStore(t, d, w, live, live.Add(24*time.Hour))
	if got := rec.list(); len(got) != 0 {
		t.Errorf("alerts on usual traffic: %+v", events(got))
	}

	// Yet a spike well under the default minimum rate alerts: the
	// baseline, not the floor, kept the day quiet.
	next := live.Add(24*time.Hour + 3*time.Hour)
	w.bursts = append(w.bursts, burst{client: peers[1], from: next, to: next.Add(20 * time.Minute), rate: 100_000})
	inStore(t, d, w, live.Add(24*time.Hour), next.Add(time.Hour))
	checkOnce(t, rec.list(), HostSubject, peers[1].String())
}

// A restart in a spike neither raises it again nor loses it: before it
// fired, it fires after; after, the restarted daemon resolves it.
func TestRestartDuringSpike(t *testing.T) {
	for _, after := range []time.Duration{time.Minute, 6 * time.Minute} {
		t.Run(fmt.Sprintf("%v into the spike", after), func(t *testing.T) {
			d, rec, open := withHistory(t)
			w := world{bursts: []burst{spike}}
			restart := spikeStart.Add(after)
			inStore(t, d, w, live, restart)
			fired := len(rec.list())

			d = open(Config{}, restart)
			if got := len(d.Active()); got != fired {
				t.Errorf("%d alerts active after the restart, want the %d fired before", got, fired)
			}
			inStore(t, d, w, restart, live.Add(14*time.Hour))
			checkOnce(t, rec.list(), HostSubject, spiker.String())

			// A third start finds nothing to resolve or raise.
			d = open(Config{}, live.Add(14*time.Hour))
			if got := d.Active(); len(got) != 0 {
				t.Errorf("alerts active after the spike: %+v", events(got))
			}
		})
	}
}

// A spike soon after one resolved waits for the cooldown, then fires once.
func TestCooldown(t *testing.T) {
	d, rec, _ := withHistory(t)
	resolved := spike.to.Add(DefaultResolve)
	again := burst{client: spiker, from: resolved.Add(10 * time.Minute), to: resolved.Add(90 * time.Minute), rate: 1_000_000}
	inStore(t, d, world{bursts: []burst{spike, again}}, live, live.Add(14*time.Hour))
	alerts := rec.list()
	var second []Alert
	for _, a := range alerts {
		if a.StartedAt.After(spikeStart) {
			second = append(second, a)
		}
	}
	if len(alerts) != 8 || len(second) != 4 {
		t.Fatalf("alerts %+v, want two spikes of the host and the client, fired and resolved", events(alerts))
	}
	checkOnce(t, second, HostSubject, spiker.String())
	if s := second[0]; !s.StartedAt.Equal(again.from) {
		t.Errorf("second spike started %v, want %v", s.StartedAt, again.from)
	}
}

// However many clients come, only MaxClients are followed.
func TestFollowsAtMostMaxClients(t *testing.T) {
	s := newSpikes(Spike{MaxClients: 3})
	s.judging = true
	m := live
	for i := range 50 {
		c := traffic.ClientOf(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}))
		s.consume(traffic.Period{Start: m, End: m.Add(time.Minute), Rows: []traffic.Row{{Start: m, Client: c, Traffic: consensus(1000)}}})
		if len(s.clients) > 3 {
			t.Fatalf("%d clients followed, want at most 3", len(s.clients))
		}
		m = m.Add(time.Minute)
	}
	if _, ok := s.clients[traffic.ClientOf(netip.AddrFrom4([4]byte{10, 0, 0, 49}))]; !ok {
		t.Error("the latest client is not followed")
	}
}

// With a flush interval longer than a minute, a rate is taken over the
// interval: its rows are all filed under its first minute.
func TestStepLongerThanAMinute(t *testing.T) {
	for _, tt := range []struct {
		interval, step time.Duration
	}{{5 * time.Minute, 5 * time.Minute}, {90 * time.Second, 2 * time.Minute}, {2 * time.Hour, time.Hour}, {10 * time.Second, time.Minute}} {
		s := newSpikes(Spike{Step: tt.interval})
		if s.cfg.Step != tt.step {
			t.Errorf("interval %v: step %v, want %v", tt.interval, s.cfg.Step, tt.step)
		}
	}
	s := newSpikes(Spike{Step: 5 * time.Minute})
	m := live.Add(10 * time.Minute)
	s.consume(traffic.Period{Start: m, End: m.Add(5 * time.Minute), Rows: []traffic.Row{{Start: m, Client: spiker, Traffic: consensus(1000)}}})
	// consensus(1000) is a minute at 1000 B/s: over five minutes, 200 B/s.
	if got := s.host.rates[2]; got != 200 || !s.counted[2] || s.isOpen {
		t.Errorf("rate of the third step of the hour %v (counted %v, open %v), want 200 B/s, closed", got, s.counted[2], s.isOpen)
	}
	// A row of a step already judged changes nothing.
	s.consume(traffic.Period{Start: m.Add(5 * time.Minute), End: m.Add(5 * time.Minute), Rows: []traffic.Row{{Start: m, Client: spiker, Traffic: consensus(1000)}}})
	if s.isOpen || s.host.rates[2] != 200 {
		t.Errorf("a late row reopened its step")
	}
}

func TestMedianMAD(t *testing.T) {
	tests := []struct {
		xs          []float64
		median, mad float64
	}{
		{nil, 0, 0},
		{[]float64{5}, 5, 0},
		{[]float64{1, 2, 3, 4, 100}, 3, 1},
		{[]float64{4, 1, 3, 2}, 2.5, 1},
	}
	for _, tt := range tests {
		m, d := medianMAD(slices.Clone(tt.xs))
		if m != tt.median || d != tt.mad {
			t.Errorf("medianMAD(%v) = %v, %v; want %v, %v", tt.xs, m, d, tt.median, tt.mad)
		}
	}
}

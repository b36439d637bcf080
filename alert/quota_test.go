package alert

import (
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/billing"
	"github.com/back2basic/collector/internal/testkit/syncbuf"
	"github.com/back2basic/collector/traffic"
)

// billedOn returns the billing cycle whose periods start on day of each
// month in UTC, the zone of the tests' times.
func billedOn(day int) billing.Cycle {
	c, err := billing.NewCycle(day, time.UTC)
	if err != nil {
		panic(err) // a test's own day
	}
	return c
}

// uploading sends about 11 MB a minute up: 80% of a 1 GB quota in about
// 73 minutes.
var uploading = world{upload: 10_000_000}

// quotaConfig sets a 1 GB quota up, and one down that is never reached,
// billed from day 10: live is the last day of a period.
var quotaConfig = Config{Spike: Spike{Off: true}, Quota: Quota{Up: 1e9, Down: 1e12, Billing: billedOn(10)}}

// used returns what w moves in [from, to).
func used(w world, from, to time.Time) traffic.Traffic {
	var sum traffic.Traffic
	for m := from; m.Before(to); m = m.Add(time.Minute) {
		for _, r := range w.rows(m) {
			sum.Add(&r.Traffic)
		}
	}
	return sum
}

// quotaEvent is a quota alert as the tests compare them.
type quotaEvent struct {
	status    Status
	threshold float64
	period    time.Time
}

func quotaEvents(alerts []Alert) []quotaEvent {
	var out []quotaEvent
	for _, a := range alerts {
		out = append(out, quotaEvent{a.Status, a.Quota.Threshold, a.Quota.PeriodStart})
	}
	return out
}

// Each threshold fires once per period, resolves as the period ends, and
// fires again in the next; a restart between changes nothing.
func TestQuotaThresholds(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := "one run"
		if restart {
			name = "restart after 80%"
		}
		t.Run(name, func(t *testing.T) {
			st := openStore(t)
			rec := &recorder{}
			cfg := quotaConfig
			cfg.Notify = rec
			from := live.Add(21 * time.Hour)
			d := load(t, st, cfg, from)
			boundary := live.AddDate(0, 0, 1)
			end := boundary.Add(80 * time.Minute)
			stop := end
			if restart {
				stop = from.Add(80 * time.Minute)
			}
			run(t, st, d, uploading, from, stop)
			if restart {
				if got := quotaEvents(d.Active()); len(got) != 1 || got[0].threshold != 0.8 {
					t.Fatalf("active before the restart: %+v, want the 80%% alert", got)
				}
				d = load(t, st, cfg, stop)
				if got := quotaEvents(d.Active()); len(got) != 1 || got[0].threshold != 0.8 {
					t.Errorf("active after the restart: %+v, want the 80%% alert", got)
				}
				run(t, st, d, uploading, stop, end)
			}

			old, next := boundary.AddDate(0, -1, 0), boundary
			want := []quotaEvent{
				{Firing, 0.8, old}, {Firing, 1, old},
				{Resolved, 0.8, old}, {Resolved, 1, old},
				{Firing, 0.8, next},
			}
			alerts := rec.list()
			if got := quotaEvents(alerts); !reflect.DeepEqual(got, want) {
				t.Fatalf("quota alerts:\n%+v\nwant\n%+v", got, want)
			}
			for i, a := range alerts {
				if a.Kind != QuotaThreshold || a.Subject != "up" || a.Quota.Quota != 1e9 || a.Quota.Share < a.Quota.Threshold {
					t.Errorf("alert %d: %+v %+v", i, a, a.Quota)
				}
			}
			if alerts[0].ID != alerts[2].ID || alerts[0].ID == alerts[4].ID || alerts[0].ID == alerts[1].ID {
				t.Errorf("ids %s %s %s %s %s: want the firing and resolution of a threshold to share one, and no other", alerts[0].ID, alerts[1].ID, alerts[2].ID, alerts[3].ID, alerts[4].ID)
			}
			if r := alerts[2]; !r.ResolvedAt.Equal(boundary) || r.Quota.Used != sumUp(used(uploading, from, boundary)) {
				t.Errorf("resolved %v, used %d; want at %v with the period's use", r.ResolvedAt, r.Quota.Used, boundary)
			}

			// What the metrics show.
			u := used(uploading, boundary, end)
			p := cfg.Quota.Billing.Period(end)
			want2 := []QuotaUse{
				{Direction: "up", Used: sumUp(u), Limit: 1e9, Projected: p.Project(sumUp(u), end)},
				{Direction: "down", Used: sumDown(u), Limit: 1e12, Projected: p.Project(sumDown(u), end)},
			}
			if got := d.QuotaUse(); !reflect.DeepEqual(got, want2) {
				t.Errorf("QuotaUse = %+v, want %+v", got, want2)
			}
		})
	}
}

func sumUp(t traffic.Traffic) uint64 {
	var n uint64
	for c := range t {
		n += t[c][traffic.Up].Bytes
	}
	return n
}

func sumDown(t traffic.Traffic) uint64 {
	var n uint64
	for c := range t {
		n += t[c][traffic.Down].Bytes
	}
	return n
}

// A quota alert of a period that ended while the daemon was down resolves
// at start, and a threshold crossed meanwhile fires.
func TestQuotaAcrossDowntime(t *testing.T) {
	st := openStore(t)
	rec := &recorder{}
	cfg := quotaConfig
	cfg.Notify = rec
	from := live.Add(21 * time.Hour)
	run(t, st, load(t, st, cfg, from), uploading, from, from.Add(80*time.Minute))
	// Down over the boundary; then traffic already past 80% of the next
	// period is in the database when it starts again.
	boundary := live.AddDate(0, 0, 1)
	run(t, st, nil, uploading, boundary, boundary.Add(80*time.Minute))
	d := load(t, st, cfg, boundary.Add(80*time.Minute))
	want := []quotaEvent{{Firing, 0.8, boundary.AddDate(0, -1, 0)}, {Resolved, 0.8, boundary.AddDate(0, -1, 0)}, {Firing, 0.8, boundary}}
	if got := quotaEvents(rec.list()); !reflect.DeepEqual(got, want) {
		t.Errorf("quota alerts:\n%+v\nwant\n%+v", got, want)
	}
	if got := quotaEvents(d.Active()); len(got) != 1 || !got[0].period.Equal(boundary) {
		t.Errorf("active %+v, want the new period's 80%%", got)
	}
}

// Turning a quota off resolves its alert at the next start.
func TestQuotaTurnedOff(t *testing.T) {
	st := openStore(t)
	rec := &recorder{}
	cfg := quotaConfig
	cfg.Notify = rec
	from := live.Add(21 * time.Hour)
	run(t, st, load(t, st, cfg, from), uploading, from, from.Add(80*time.Minute))
	cfg.Quota = Quota{}
	d := load(t, st, cfg, from.Add(80*time.Minute))
	if got := events(rec.list()); len(got) != 2 || got[1].status != Resolved {
		t.Errorf("alerts %+v, want the 80%% alert fired and resolved", got)
	}
	if len(d.Active()) != 0 || d.QuotaUse() != nil {
		t.Errorf("without a quota: active %+v, use %+v", d.Active(), d.QuotaUse())
	}
}

func TestQuotaSettings(t *testing.T) {
	st := openStore(t)
	tests := []struct {
		quota Quota
		err   string
	}{
		{Quota{Up: 1}, "no billing period"},
		{Quota{Up: 1, Billing: billedOn(1), Thresholds: []float64{0.5, 0}}, "quota threshold 0"},
		{Quota{Total: 1, Billing: billedOn(1), Thresholds: []float64{1, 0.5, 1}}, ""},
		{Quota{}, ""},
	}
	for _, tt := range tests {
		_, err := New(Config{Store: st, Quota: tt.quota})
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("New(%+v) = %v, want error containing %q", tt.quota, err, tt.err)
		}
	}
	var tr traffic.Traffic
	tr[traffic.QUIC][traffic.Up].Bytes = 300
	tr[traffic.Consensus][traffic.Down].Bytes = 100
	got := Quota{Down: 1000, Total: 200}.Uses(&tr)
	want := []QuotaUse{{Direction: "down", Used: 100, Limit: 1000}, {Direction: "total", Used: 400, Limit: 200}}
	if !reflect.DeepEqual(got, want) || got[1].Share() != 2 {
		t.Errorf("Uses = %+v, want %+v", got, want)
	}
}

// hourOfUpload is a closed period of an hour from start in which renter
// sent up bytes.
func hourOfUpload(start time.Time, up uint64) traffic.Period {
	var tr traffic.Traffic
	tr[traffic.Siamux][traffic.Up].Bytes = up
	return traffic.Period{Start: start, End: start.Add(time.Hour), Rows: []traffic.Row{{Start: start, Client: renter, Traffic: tr}}}
}

// With QUOTA_ON_PROJECTION, a threshold the period's projection crosses
// fires once, not before the projection has settled for a day, survives a
// restart, and resolves as the period ends; a threshold only the
// projection would cross never fires without it.
func TestQuotaProjection(t *testing.T) {
	// March 10 to April 10: 744 hours. 120 MB an hour projects to
	// 89.28 GB of a 100 GB quota from the first hour on: past 80%, not
	// 100%, while what is used stays below both.
	const perHour = 120e6
	boundary := live.AddDate(0, 0, 1)
	period := billedOn(10).Period(boundary)
	if hours := period.End.Sub(period.Start).Hours(); hours != 744 {
		t.Fatalf("the test's period has %v hours", hours)
	}
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("on projection %v", on), func(t *testing.T) {
			st := openStore(t)
			rec := &recorder{}
			var journal syncbuf.Buffer
			cfg := Config{Spike: Spike{Off: true}, Notify: rec, Log: slog.New(slog.NewTextHandler(&journal, nil)),
				Quota: Quota{Up: 100e9, Billing: billedOn(10), OnProjection: on}}
			d := load(t, st, cfg, boundary)
			consume := func(d *Detector, from, to time.Time) {
				t.Helper()
				for h := from; h.Before(to); h = h.Add(time.Hour) {
					p := hourOfUpload(h, perHour)
					if err := st.Write(t.Context(), p.Rows); err != nil {
						t.Fatal(err)
					}
					if err := d.Consume(t.Context(), p); err != nil {
						t.Fatal(err)
					}
				}
			}
			settled := boundary.Add(billing.ProjectionSettles)
			consume(d, boundary, settled.Add(-time.Hour))
			if got := rec.list(); len(got) != 0 {
				t.Fatalf("alerts before the projection settled: %+v", got)
			}
			consume(d, settled.Add(-time.Hour), settled.Add(6*time.Hour))
			if !on {
				if got := rec.list(); len(got) != 0 || d.QuotaUse()[0].Projected != 744*perHour {
					t.Errorf("without QUOTA_ON_PROJECTION: alerts %+v, use %+v; want none, projected 89.28 GB", got, d.QuotaUse())
				}
				return
			}
			alerts := rec.list()
			if len(alerts) != 1 {
				t.Fatalf("alerts %+v, want the 80%% projection alone", alerts)
			}
			a := alerts[0]
			if a.Kind != QuotaProjection || a.Status != Firing || a.Subject != "up" || a.Quota.Threshold != 0.8 ||
				!a.StartedAt.Equal(settled) || a.Quota.Used != 24*perHour || a.Quota.Projected != 744*perHour || a.Quota.Share != 0.8928 {
				t.Errorf("alert %+v %+v; want up's 80%% projection at %v, 2.88 GB used, 89.28 GB projected", a, a.Quota, settled)
			}
			if !strings.Contains(a.Summary(), "on course to use 89% of its up quota") {
				t.Errorf("summary %q", a.Summary())
			}
			// The journal says it once; the metrics count it active.
			if n := strings.Count(journal.String(), `msg="billing period projected past a quota threshold"`); n != 1 {
				t.Errorf("%d journal lines of the projection, want 1:\n%s", n, journal.String())
			}
			if got := d.Active(); len(got) != 1 || got[0].Kind != QuotaProjection {
				t.Errorf("active %+v, want the projection alert", got)
			}

			// A restart keeps it firing and raises it not again.
			restart := settled.Add(6 * time.Hour)
			d = load(t, st, cfg, restart)
			if got := d.Active(); len(got) != 1 || got[0].ID != a.ID {
				t.Errorf("active after a restart %+v, want the projection alert", got)
			}
			consume(d, restart, restart.Add(3*time.Hour))
			consume(d, period.End.Add(-time.Hour), period.End.Add(time.Hour))
			alerts = rec.list()
			if len(alerts) != 2 {
				t.Fatalf("alerts %+v, want the projection firing and resolving", alerts)
			}
			r := alerts[1]
			if r.ID != a.ID || r.Status != Resolved || !r.ResolvedAt.Equal(period.End) || r.Quota.Used != 34*perHour || r.Quota.Projected != 34*perHour {
				t.Errorf("resolution %+v %+v; want at %v with the 4.08 GB used", r, r.Quota, period.End)
			}
			if got := d.Active(); len(got) != 0 {
				t.Errorf("active in the next period: %+v", got)
			}
		})
	}
}

// Turning QUOTA_ON_PROJECTION off resolves its alert at the next start,
// and leaves the quota's own alerts alone.
func TestQuotaProjectionTurnedOff(t *testing.T) {
	st := openStore(t)
	rec := &recorder{}
	boundary := live.AddDate(0, 0, 1)
	cfg := Config{Spike: Spike{Off: true}, Notify: rec, Quota: Quota{Up: 100e9, Billing: billedOn(10), OnProjection: true}}
	d := load(t, st, cfg, boundary)
	for h := boundary; h.Before(boundary.Add(25 * time.Hour)); h = h.Add(time.Hour) {
		p := hourOfUpload(h, 120e6)
		if err := st.Write(t.Context(), p.Rows); err != nil {
			t.Fatal(err)
		}
		if err := d.Consume(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Quota.OnProjection = false
	d = load(t, st, cfg, boundary.Add(26*time.Hour))
	got := rec.list()
	if len(got) != 2 || got[0].Kind != QuotaProjection || got[1].Status != Resolved || got[1].ID != got[0].ID {
		t.Errorf("alerts %+v, want the projection fired and resolved", got)
	}
	if len(d.Active()) != 0 || len(d.QuotaUse()) != 1 {
		t.Errorf("without QUOTA_ON_PROJECTION: active %+v, use %+v; want none active, the quota followed", d.Active(), d.QuotaUse())
	}
}

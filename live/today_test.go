package live

import (
	"testing"
	"time"

	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// totals returns what d holds, a client each, and the untracked sum.
func totals(d *Today) (map[traffic.Client]traffic.Traffic, traffic.Traffic) {
	clients, untracked := d.samples()
	got := make(map[traffic.Client]traffic.Traffic, len(clients))
	for _, s := range clients {
		got[s.Client] = s.Traffic
	}
	return got, untracked
}

// consume hands d a period of rows, which it must take.
func consume(t *testing.T, d *Today, rows ...traffic.Row) {
	t.Helper()
	p := traffic.Period{Rows: rows}
	if len(rows) > 0 {
		p.Start, p.End = rows[0].Start, rows[0].Start.Add(time.Minute)
	}
	if err := d.Consume(t.Context(), p); err != nil {
		t.Fatalf("Consume = %v, want nil", err)
	}
}

// checkTotals fails unless d holds exactly want and untracked.
func checkTotals(t *testing.T, d *Today, want map[traffic.Client]traffic.Traffic, untracked traffic.Traffic) {
	t.Helper()
	got, gotUntracked := totals(d)
	if len(got) != len(want) {
		t.Errorf("clients %v, want %v", got, want)
	}
	for c, w := range want {
		if got[c] != w {
			t.Errorf("%s: %v, want %v", c, got[c], w)
		}
	}
	if gotUntracked != untracked {
		t.Errorf("untracked %v, want %v", gotUntracked, untracked)
	}
}

// TestTodayFollowsFlushes: rows of today add up per client, 'other' apart;
// rows of another day are left out; past max clients the rest is summed on
// one line, so totals stay exact; at midnight it starts again.
func TestTodayFollowsFlushes(t *testing.T) {
	clock := now
	d := NewToday(2, func() time.Time { return clock })
	a, b, c := client("192.0.2.1"), client("2001:db8::2"), client("192.0.2.3")
	minute := now.Add(-time.Hour).UTC() // rows come in UTC
	consume(t, d,
		traffic.Row{Start: minute, Client: a, Traffic: siamux(1000, 0)},
		traffic.Row{Start: minute, Client: b, Traffic: siamux(0, 2000)},
		traffic.Row{Start: minute, Client: traffic.Other, Traffic: siamux(5, 5)},
		traffic.Row{Start: minute.Add(-10 * time.Hour), Client: a, Traffic: siamux(7, 7)}, // yesterday, local time
	)
	consume(t, d,
		traffic.Row{Start: minute.Add(time.Minute), Client: a, Traffic: siamux(1000, 0)},
		traffic.Row{Start: minute.Add(time.Minute), Client: c, Traffic: siamux(3, 3)}, // past max
	)
	consume(t, d) // an empty period changes nothing
	twice := siamux(1000, 0)
	twice.Add(&twice)
	checkTotals(t, d, map[traffic.Client]traffic.Traffic{a: twice, b: siamux(0, 2000), traffic.Other: siamux(5, 5)}, siamux(3, 3))

	clock = now.Add(15 * time.Hour) // past midnight
	if clients, untracked := d.samples(); len(clients) != 0 || !untracked.IsZero() {
		t.Errorf("a new day starts empty; got %v and %v", clients, untracked)
	}
}

// TestTodayAddsToLoaded: what a period brings adds to what Load read from
// the database, 'other' and the untracked sum included; 'other' takes no
// client's place; a period that comes after an outage, with rows kept
// since yesterday, adds today's rows alone.
func TestTodayAddsToLoaded(t *testing.T) {
	a, b, c := client("192.0.2.1"), client("2001:db8::2"), client("192.0.2.3")
	st := &topClients{top: store.Top{
		Clients:     []store.ClientTotal{{Client: a, Traffic: siamux(100, 200)}, {Client: traffic.Other, Traffic: siamux(1, 1)}},
		Rest:        siamux(30, 30),
		RestClients: 3,
	}}
	d := NewToday(2, func() time.Time { return now })
	if err := d.Load(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	minute := now.Add(-time.Hour).UTC()
	yesterday := minute.Add(-10 * time.Hour)
	consume(t, d,
		traffic.Row{Start: yesterday, Client: a, Traffic: siamux(7, 7)},
		traffic.Row{Start: yesterday, Client: traffic.Other, Traffic: siamux(7, 7)},
		traffic.Row{Start: minute, Client: a, Traffic: siamux(1000, 0)},
		traffic.Row{Start: minute, Client: traffic.Other, Traffic: siamux(2, 2)},
		traffic.Row{Start: minute, Client: b, Traffic: siamux(3, 3)},
	)
	consume(t, d, traffic.Row{Start: minute, Client: c, Traffic: siamux(4, 4)}) // past max
	a1, other, rest := siamux(100, 200), siamux(1, 1), siamux(30, 30)
	a2, other2, c1 := siamux(1000, 0), siamux(2, 2), siamux(4, 4)
	a1.Add(&a2)
	other.Add(&other2)
	rest.Add(&c1)
	checkTotals(t, d, map[traffic.Client]traffic.Traffic{a: a1, b: siamux(3, 3), traffic.Other: other}, rest)
}

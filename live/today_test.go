package live

import (
	"net/netip"
	"testing"
	"time"

	"github.com/back2basic/collector/agg"
	"github.com/back2basic/collector/bpfgo"
)

// TestTodayFollowsFlushes: rows of today add up per client, 'other' apart;
// rows of another day are left out; past max clients the rest is summed on
// one line, so totals stay exact; at midnight it starts again.
func TestTodayFollowsFlushes(t *testing.T) {
	clock := now
	d := NewToday(2, func() time.Time { return clock })
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("192.0.2.3")
	minute := now.Add(-time.Hour).UTC() // rows come in UTC
	d.Stored([]agg.Row{
		{Start: minute, Client: a, Traffic: siamux(1000, 0)},
		{Start: minute, Client: b, Traffic: siamux(0, 2000)},
		{Start: minute, Overflow: true, Traffic: siamux(5, 5)},
		{Start: minute.Add(-10 * time.Hour), Client: a, Traffic: siamux(7, 7)}, // yesterday, local time
	})
	d.Stored([]agg.Row{
		{Start: minute.Add(time.Minute), Client: a, Traffic: siamux(1000, 0)},
		{Start: minute.Add(time.Minute), Client: c, Traffic: siamux(3, 3)}, // past max
	})
	clients, untracked := d.samples()
	got := map[netip.Addr]bpfgo.Traffic{}
	for _, s := range clients {
		got[s.Client] = s.Traffic
	}
	twice := siamux(1000, 0)
	twice.Add(&twice)
	want := map[netip.Addr]bpfgo.Traffic{a: twice, b: siamux(0, 2000), {}: siamux(5, 5)}
	if len(got) != len(want) || got[a] != want[a] || got[b] != want[b] || got[netip.Addr{}] != want[netip.Addr{}] {
		t.Errorf("clients %v, want %v", got, want)
	}
	if untracked != siamux(3, 3) {
		t.Errorf("untracked %v, want the third client's traffic", untracked)
	}

	clock = now.Add(15 * time.Hour) // past midnight
	if clients, untracked := d.samples(); len(clients) != 0 || !untracked.IsZero() {
		t.Errorf("a new day starts empty; got %v and %v", clients, untracked)
	}
}

package store

import (
	"net/netip"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/dbtest"
	"github.com/back2basic/collector/traffic"
)

func TestClientPrefixSQL(t *testing.T) {
	st := openStore(t)
	for ip, want := range map[string]string{
		"198.51.100.7":    "198.51.100.0/24",
		"198.51.100.255":  "198.51.100.0/24",
		"2001:db8:1:2::3": "2001:db8:1::/48",
		"2001:db8::42":    "2001:db8::/48",
		"other":           "other",
	} {
		var got string
		if err := st.db.QueryRowContext(t.Context(), "SELECT "+clientPrefixSQL+"(?)", ip).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s(%s) = %s, want %s", clientPrefixSQL, ip, got, want)
		}
	}
	var got string
	if err := st.db.QueryRowContext(t.Context(), "SELECT "+clientPrefixSQL+"('bogus')").Scan(&got); err == nil {
		t.Errorf("%s(bogus) = %q, want an error", clientPrefixSQL, got)
	}
}

// TestTopPrefixes: clients are summed into their IPv4 /24 or IPv6 /48 and
// Other into its own row, ranked and cut as TopClients does.
func TestTopPrefixes(t *testing.T) {
	st := openStore(t)
	var consensusOnly, quicOnly traffic.Traffic
	consensusOnly[traffic.Consensus][traffic.Up] = traffic.Tally{Bytes: 30_000, Packets: 20}
	quicOnly[traffic.QUIC][traffic.Down] = traffic.Tally{Bytes: 500, Packets: 1}
	write(t, st, map[rowKey]traffic.Traffic{
		{t0.Unix(), clientOf("192.0.2.1")}:          dbtest.Seeded(9),
		{t0.Unix() + 60, clientOf("192.0.2.200")}:   dbtest.Seeded(1),
		{t0.Unix(), clientOf("192.0.3.1")}:          dbtest.Seeded(1),
		{t0.Unix(), clientOf("2001:db8:1::1")}:      consensusOnly,
		{t0.Unix(), clientOf("2001:db8:1:ffff::2")}: quicOnly,
		{t0.Unix(), clientOf("2001:db8:2::1")}:      dbtest.Seeded(3),
		{t0.Unix(), traffic.Other}:                  dbtest.Seeded(2),
	})
	q := Query{Since: t0, Until: t0.Add(time.Hour)}
	v6 := consensusOnly
	v6.Add(&quicOnly)
	// By all bytes: 192.0.2.0/24 60,294, 2001:db8:1::/48 30,500,
	// 2001:db8:2::/48 18,147, other 12,147, 192.0.3.0/24 6,147.
	all := []PrefixTotal{
		{netip.MustParsePrefix("192.0.2.0/24"), dbtest.Sum(9, 1)},
		{netip.MustParsePrefix("2001:db8:1::/48"), v6},
		{netip.MustParsePrefix("2001:db8:2::/48"), dbtest.Seeded(3)},
		{netip.Prefix{}, dbtest.Seeded(2)},
		{netip.MustParsePrefix("192.0.3.0/24"), dbtest.Seeded(1)},
	}
	sum := func(totals []PrefixTotal) traffic.Traffic {
		var out traffic.Traffic
		for _, p := range totals {
			out.Add(&p.Traffic)
		}
		return out
	}
	for _, tt := range []struct {
		name string
		n    int
		want PrefixTop
	}{
		{"all", 0, PrefixTop{Prefixes: all}},
		{"top 2", 2, PrefixTop{Prefixes: all[:2], Rest: sum(all[2:]), RestPrefixes: 3}},
		{"more than there are", 10, PrefixTop{Prefixes: all}},
		{"none", -1, PrefixTop{Rest: sum(all), RestPrefixes: 5}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			top, err := st.TopPrefixes(t.Context(), q, tt.n, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(top.Prefixes) != len(tt.want.Prefixes) || top.Rest != tt.want.Rest || top.RestPrefixes != tt.want.RestPrefixes {
				t.Fatalf("got %d prefixes and %d more (%v), want %d and %d more (%v)",
					len(top.Prefixes), top.RestPrefixes, top.Rest, len(tt.want.Prefixes), tt.want.RestPrefixes, tt.want.Rest)
			}
			for i, p := range top.Prefixes {
				if w := tt.want.Prefixes[i]; p != w {
					t.Errorf("row %d: %v %v, want %v %v", i, p.Prefix, p.Traffic, w.Prefix, w.Traffic)
				}
			}
		})
	}

	// Ranked by QUIC bytes only, a network with none is left out.
	top, err := st.TopPrefixes(t.Context(), Query{Since: t0, Until: t0.Add(time.Hour), Clients: []traffic.Client{clientOf("2001:db8:1::1"), clientOf("2001:db8:1:ffff::2")}}, 0, []traffic.Class{traffic.QUIC})
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Prefixes) != 1 || top.Prefixes[0] != all[1] {
		t.Errorf("QUIC of two clients of 2001:db8:1::/48: %+v, want %+v", top.Prefixes, all[1:2])
	}
}

package agg

import (
	"cmp"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/back2basic/collector/traffic"
)

// Source addresses are attacker input: a flood of forged ones must cost
// neither the database nor the real clients their rows. Four things here
// see to it:
//
//   - every client with traffic gets a row of its own, until a flush period
//     holds more than MaxClientRows of them: then the clients that proved
//     lately that they are real keep theirs first, then the busiest, and the
//     traffic of the rest is added to that minute's 'other' row, so totals
//     stay exact (budget.go);
//   - MinClientBytes, when set, also adds clients that moved less than it
//     in a flush period to 'other';
//   - the proven clients, then the clients that had rows of their own in
//     the last recentFor, keep their place in the kernel's counter map: the
//     map that is swapped in next is seeded with them (Seeder), so forged
//     addresses that fill it cannot push them into 'other';
//   - the kernel map filling up, and the row budget folding clients, are
//     each logged once as it starts and once as it ends, with what went to
//     'other' meanwhile.

// recentFor is how long a client that had a row of its own keeps its place
// in the counter map.
const recentFor = 15 * time.Minute

// Seeder keeps room in the counter map of the next periods for clients,
// so that new addresses filling the map cannot crowd them out.
type Seeder interface {
	Seed(clients []netip.Addr)
}

// recentClients are the clients that did something (had rows of their
// own, proved they are real) in the last keep, with when they last did,
// bounded to max.
type recentClients struct {
	max  int
	keep time.Duration
	seen map[netip.Addr]time.Time
}

// note records that the clients did it at now. Past max, a client not yet
// known waits for room: those known keep their place.
func (r *recentClients) note(now time.Time, clients []netip.Addr) {
	if r.seen == nil {
		r.seen = make(map[netip.Addr]time.Time)
	}
	for addr, at := range r.seen {
		if now.Sub(at) > r.keep {
			delete(r.seen, addr)
		}
	}
	for _, c := range clients {
		if _, ok := r.seen[c]; ok || len(r.seen) < r.max {
			r.seen[c] = now
		}
	}
}

// has reports whether addr did it in the last keep, as of the last note.
func (r *recentClients) has(addr netip.Addr) bool {
	_, ok := r.seen[addr]
	return ok
}

// list returns the recent clients, latest first.
func (r *recentClients) list() []netip.Addr {
	out := make([]netip.Addr, 0, len(r.seen))
	for addr := range r.seen {
		out = append(out, addr)
	}
	slices.SortFunc(out, func(x, y netip.Addr) int {
		return cmp.Or(r.seen[y].Compare(r.seen[x]), x.Compare(y))
	})
	return out
}

// mapFull tracks an episode of the kernel map being full: drains whose
// overflow entry counted anything.
type mapFull struct {
	since   time.Time
	overflw traffic.Traffic // what went to the overflow entry in this episode
	active  bool
}

// update records one drain's overflow traffic at now and logs the start
// and the end of an episode.
func (m *mapFull) update(log *slog.Logger, now time.Time, overflow *traffic.Traffic) {
	switch {
	case !overflow.IsZero() && !m.active:
		m.active, m.since, m.overflw = true, now, *overflow
		log.Warn("the counter map is full (MAX_CLIENTS): traffic of further new clients is counted as 'other' until it has room again",
			"other_bytes", overflow.Bytes(), "other_packets", overflow.Packets())
	case !overflow.IsZero():
		m.overflw.Add(overflow)
	case m.active:
		m.active = false
		log.Info("the counter map has room again", "full_for", now.Sub(m.since).Round(time.Second),
			"other_bytes", m.overflw.Bytes(), "other_packets", m.overflw.Packets())
	}
}

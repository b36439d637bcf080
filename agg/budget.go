package agg

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/back2basic/collector/internal/foldlog"
	"github.com/back2basic/collector/traffic"
)

// DefaultMaxClientRows is the default of Config.MaxClientRows. At it, a
// flood of ever-new forged sources grows the database by about 54 MB a
// day (BenchmarkFloodDatabaseGrowth), half of the 100 MB allowed, which
// leaves room for rows that carry every counter where forged ones carry
// two; twice as many rows measured 106 MB. A busy host's clients, a few
// hundred a minute, stay below it.
const DefaultMaxClientRows = 500

// provenFor is how long a client that proved it is real is ranked first
// by the row budget and seeded first: a day, the longest rollup budget, so
// that a renter proven once today keeps its row in today's daily rollup
// too, and a renter that comes back within the day is ranked first from
// its first packet, before it proves itself again. A forger cannot join
// the set, so its size is that of the real clients of a day.
const provenFor = 24 * time.Hour

// maxProven bounds the proven clients remembered: half the default
// counter map (MAX_CLIENTS), what the map keeps room for when seeding;
// an entry is an address and a time.
const maxProven = 32_768

// rowBudget holds what the row budget remembers between flushes.
type rowBudget struct {
	proven recentClients
	// folding is the run of flushes that folded clients into 'other'.
	folding foldlog.Episode
}

func newRowBudget() rowBudget {
	return rowBudget{
		proven: recentClients{max: maxProven, keep: provenFor},
		folding: foldlog.Episode{
			Start: "more clients in a flush period than MAX_CLIENT_ROWS: proven clients keep their rows first, then the busiest; the rest are added to 'other' until they fit again",
			End:   "every client of a flush period has a row of its own again",
		},
	}
}

// budgeted is a period's clients after the budget: the rows, and the
// clients that kept theirs.
type budgeted struct {
	rows   []traffic.Row
	own    []netip.Addr     // clients with rows of their own
	proven []traffic.Client // those of them proven lately
}

// ranked is a row the budget ranks, by its place in the rows.
type ranked struct {
	row    int
	bytes  uint64 // Traffic.Bytes(), summed once rather than per comparison
	proven bool
}

// budgetRows applies the row budget to the rows of a period filed under
// minute and drained at now, a row per client, beside other (the overflow entry) and the clients
// that proved they are real in it. Each client keeps its row unless it
// moved less than MinClientBytes or there are more than MaxClientRows:
// then proven clients keep theirs first, then the busiest by bytes, and
// the rest is added to other, which comes last when not zero. It reuses
// rows. a.mu must be held.
func (a *Aggregator) budgetRows(minute, now time.Time, rows []traffic.Row, other traffic.Traffic, provedNow map[netip.Addr]bool) budgeted {
	a.budget.proven.note(now, slices.Collect(maps.Keys(provedNow)))
	own := rows[:0]
	for i := range rows {
		t := &rows[i].Traffic
		switch {
		case t.IsZero():
		case t.Bytes() < a.cfg.MinClientBytes:
			other.Add(t)
		default:
			own = append(own, rows[i])
		}
	}
	isProven := func(c traffic.Client) bool {
		return provedNow[c.Addr()] || a.budget.proven.has(c.Addr())
	}
	var folded int
	var foldedBytes uint64
	if len(own) > a.cfg.MaxClientRows {
		rank := make([]ranked, len(own))
		for i := range own {
			rank[i] = ranked{row: i, bytes: own[i].Traffic.Bytes(), proven: isProven(own[i].Client)}
		}
		slices.SortFunc(rank, func(x, y ranked) int {
			return cmp.Or(compareTrueFirst(x.proven, y.proven),
				cmp.Compare(y.bytes, x.bytes), own[x.row].Client.Compare(own[y.row].Client))
		})
		fold := make([]bool, len(own))
		for _, r := range rank[a.cfg.MaxClientRows:] {
			fold[r.row] = true
			other.Add(&own[r.row].Traffic)
			foldedBytes += r.bytes
		}
		folded = len(own) - a.cfg.MaxClientRows
		kept := own[:0]
		for i := range own {
			if !fold[i] {
				kept = append(kept, own[i])
			}
		}
		own = kept
	}
	a.budget.folding.Update(a.cfg.Log, now, folded, foldedBytes, "max_client_rows", a.cfg.MaxClientRows)
	a.stats.folded(folded, foldedBytes)

	out := budgeted{rows: own, own: make([]netip.Addr, 0, len(own))}
	for _, r := range own {
		out.own = append(out.own, r.Client.Addr())
		if isProven(r.Client) {
			out.proven = append(out.proven, r.Client)
		}
	}
	if !other.IsZero() {
		out.rows = append(out.rows, traffic.Row{Start: minute, Client: traffic.Other, Traffic: other})
	}
	return out
}

// compareTrueFirst orders true before false.
func compareTrueFirst(x, y bool) int {
	switch {
	case x == y:
		return 0
	case x:
		return -1
	}
	return 1
}

// seedList is who keeps a place in the next counter maps: the proven
// clients, latest first, then the other recent ones, latest first.
func (a *Aggregator) seedList() []netip.Addr {
	out := a.budget.proven.list()
	for _, addr := range a.recent.list() {
		if !a.budget.proven.has(addr) {
			out = append(out, addr)
		}
	}
	return out[:min(len(out), a.cfg.MaxSeeded)]
}

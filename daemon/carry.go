package daemon

import (
	"context"
	"time"

	"github.com/back2basic/collector/traffic"
)

// carryOver stores what pinned counter maps of an earlier layout counted
// (see bpfgo.DrainCarried), now that the interfaces run the new programs,
// under the minute of the start, and then releases them. Each map is
// stored with its ID in one transaction before its pin goes: a start
// that stops before the write finds the pin again and stores it then; one
// that stops after the write but before the release finds the ID stored
// and only releases. A failure leaves the pins for the next start and
// does not stop this one: the new maps count all the same.
func (c *collector) carryOver(ctx context.Context) error {
	carried, err := c.counters.DrainCarried()
	if err != nil {
		c.log.Warn("pinned maps of an earlier layout stay pinned for a start that can read them", "err", err)
	}
	if len(carried) == 0 {
		return nil
	}
	minute := time.Now().Truncate(time.Minute)
	var (
		total   traffic.Traffic
		clients = map[traffic.Client]bool{}
		stored  traffic.Period
		before  int // maps an earlier start stored but did not release
	)
	for _, m := range carried {
		rows, proven := rowsAt(minute, m.Samples)
		added, err := c.store.WriteOnce(ctx, m.ID, rows, proven)
		if err != nil {
			c.log.Warn("pinned maps of an earlier layout stay pinned for the next start to carry over", "err", err)
			return nil
		}
		if err := m.Release(); err != nil {
			c.log.Warn("a carried-over map stays pinned; the next start only removes it", "err", err)
		}
		if !added {
			before++
			continue
		}
		for _, r := range rows {
			total.Add(&r.Traffic)
			if !r.Client.IsOther() {
				clients[r.Client] = true
			}
		}
		stored.Rows = append(stored.Rows, rows...)
	}
	c.log.Info("carried over what the pinned maps of an earlier layout counted", "maps", len(carried)-before,
		"clients", len(clients), "bytes", total.Bytes(), "packets", total.Packets(), "minute", minute,
		"maps_stored_by_an_earlier_start", before)
	c.afterFlush()
	if c.today != nil {
		return c.today.Consume(ctx, stored)
	}
	return nil
}

// rowsAt sums samples into one row per client at minute, and lists the
// clients that proved themselves.
func rowsAt(minute time.Time, samples []traffic.Sample) (rows []traffic.Row, proven []traffic.Client) {
	index := map[traffic.Client]int{}
	for _, s := range samples {
		i, ok := index[s.Client]
		if !ok {
			i = len(rows)
			index[s.Client] = i
			rows = append(rows, traffic.Row{Start: minute, Client: s.Client})
		}
		rows[i].Traffic.Add(&s.Traffic)
		if s.Proven {
			proven = append(proven, s.Client)
		}
	}
	return rows, proven
}

package traffic

import (
	"net/netip"
	"time"
)

// Row is what one client moved in one minute, or in one hour or day once
// rolled up: the unit the database stores and every consumer reads.
type Row struct {
	// Start is the start of the row's minute, hour or day.
	Start   time.Time
	Client  Client
	Traffic Traffic
}

// Period is what the collector hands its consumers (the database, the
// live table, metrics) each time it drains the kernel's counters: the
// rows counted from Start to End, a row per minute and client. Rows a
// consumer could not take earlier come again in later periods, merged
// with theirs, so Rows may hold minutes from before Start.
type Period struct {
	Start, End time.Time
	Rows       []Row
	// Proven are the clients of Rows that proved lately that they are
	// real (see Sample.Proven): the store ranks them first when its
	// rollups keep a row budget.
	Proven []Client
}

// OpenPeriod is the period being counted: what the kernel has counted
// since Since, a sample per client, not drained into a Period yet. The
// live views read it.
type OpenPeriod struct {
	Since   time.Time
	Samples []Sample
}

// Name is the reverse DNS name of an address, as found at a time.
type Name struct {
	Addr  netip.Addr
	DNS   string
	Found time.Time
}

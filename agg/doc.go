// Package agg moves the kernel's per-client counters into SQLite and reads
// them back.
//
// An Aggregator drains the counters at wall-clock boundaries of its interval
// (every minute at :00 by default) and adds them, in one transaction per
// flush, to traffic_minute: one row per minute and client address, bytes and
// packets per class and direction. After each flush it rolls the hours that
// have closed up into traffic_hourly and whole days into traffic_daily,
// exactly (a rollup row is the sum of the rows it stands for), and deletes
// minute and hourly rows older than their Retention, so the file stays
// bounded over years. Rows that cannot be written stay in memory, bounded
// and merged into coarser rows past the bound, and are retried, so a locked,
// read-only or full disk loses nothing while the daemon runs. A Resolver
// finds reverse DNS names in the background; each is stored once, in names.
//
// The view traffic keeps the earlier tool's table and columns, dns
// included, so that queries users wrote against it keep working:
//
//	sqlite3 /var/lib/collector/collector.db \
//	  "SELECT ip, dns, SUM(siamux_up) FROM traffic
//	   WHERE timestamp >= strftime('%s','now','-1 hour') GROUP BY ip"
//
// Open upgrades a file written by any earlier release in place (PRAGMA
// user_version). Reads (TopClients, Series, Rows) take no lock and answer
// from the coarsest table that holds the span asked about.
package agg

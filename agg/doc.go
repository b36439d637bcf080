// Package agg moves the kernel's per-client counters into SQLite.
//
// An Aggregator drains the counters at wall-clock boundaries of its interval
// (every minute at :00 by default) and adds them, in one transaction per
// flush, to the table traffic: one row per minute and client address, bytes
// and packets per class and direction. Rows that cannot be written stay in
// memory and are retried, so a locked, read-only or full disk loses nothing
// while the daemon runs. A Resolver adds reverse DNS names in the background
// without ever delaying a flush.
//
// The table keeps the earlier tool's names so that queries users wrote
// against it keep working:
//
//	sqlite3 /var/lib/collector/traffic.db \
//	  "SELECT ip, dns, SUM(siamux_up) FROM traffic
//	   WHERE timestamp >= strftime('%s','now','-1 hour') GROUP BY ip"
package agg

// Package store keeps the counted traffic in SQLite and reads it back.
//
// Write adds rows to traffic_minute: one row per minute and client address,
// bytes and packets per class and direction. Consume does that for each
// closed period, then rolls the hours that have closed up into
// traffic_hourly and whole days into traffic_daily, exactly (a rollup row
// is the sum of the rows it stands for), and deletes minute and hourly
// rows older than their Retention, so the file stays bounded over years.
// Reverse DNS names are stored once per address, in names.
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
package store

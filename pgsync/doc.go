// Package pgsync copies every host's traffic rows into one PostgreSQL
// database, exactly, so that Grafana's PostgreSQL data source, psql and any
// SQL tool see the whole fleet.
//
// Each host sends its local rows (package store) as they were last
// written: minute rows of the local retention window, and the hourly and
// daily rollups. The central tables have the local columns, with the
// host's id in the key:
//
//	traffic_minute, traffic_hourly, traffic_daily (
//	    host      text        -- HOST_ID: the machine id unless set
//	    timestamp timestamptz -- start of the UTC minute, hour or day
//	    ip        text        -- the client's address, or 'other'
//	    consensus_up, consensus_down, siamux_up, siamux_down, quic_up,
//	    quic_down bigint      -- bytes, L2 frames as counted
//	    consensus_up_packets, ..., quic_down_packets bigint
//	    PRIMARY KEY (host, timestamp, ip)
//	)
//	collector_hosts (host text PRIMARY KEY, hostname text, synced_at timestamptz,
//	    claim text, install text, address inet) -- who holds each HOST_ID
//	collector_sent (host text, tbl text, up_to text) -- how far a host's rows are here
//	collector_schema (id int, version int, central_id uuid)
//	collector_retention (host text, tbl text, keep_days int) -- each host's central retention
//	traffic_hourly_by_day, traffic_hourly_by_month -- traffic_hourly's sums (rollup.go)
//
// The collector creates and upgrades these itself (PostgreSQL 13 or
// later) and refuses a schema newer than it knows. traffic_minute and
// traffic_hourly are partitioned by day (partition.go); the central side
// keeps the rows local retention deletes, as long as the longest central
// retention any host sets, and drops whole days past it (retention.go).
//
// Exactness rests on two things. Every local write is numbered and
// records the times it changed (store.Changes reads their rows), and a
// cursor in the local database (store's sync_cursor) says up to which
// write the central side has them, so rows changed after they were first
// sent (late traffic, rollups) go again, with the unchanged rows of their
// time.
// And a batch is copied into a staging table, then merged with an upsert
// that sets the central values to the local ones, in one transaction: the
// cursor moves only after it commits, and a batch sent twice, after a
// crash between the two, lands once. Nothing is ever added centrally, so
// no restart, outage or retry can count a byte twice.
//
// The cursor belongs to one central database, as it was: the database
// has an identity, made with its schema, and collector_sent holds, with
// the rows, the place in the host's writes they reach. A host that finds
// another identity than its cursor was made for, or the database short of
// its cursor (restored from an older dump), resets the cursor and sends
// every row within local retention again (resend.go). A host's id is
// claimed by one local database at a time (claim.go), so that cloned
// machines do not overwrite each other's rows.
//
// The sync runs beside the daemon's flushes and never holds them up: rows
// wait in the local database while PostgreSQL is away, however long,
// bounded by local retention, and go out when it is back.
package pgsync

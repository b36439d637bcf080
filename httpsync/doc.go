// Package httpsync copies every host's traffic rows to an HTTPS endpoint
// the operator runs (a small web app, a serverless function), exactly, on
// the same write-sequence cursor as package pgsync: a row changed after it
// was sent (late traffic, a rollup) goes again with its new values.
//
// Each batch is one POST with Content-Type: application/json and, when a
// token is set, Authorization: Bearer <token>:
//
//	{"host": "<HOST_ID>", "table": "traffic_minute" | "traffic_hourly" | "traffic_daily",
//	 "batch_id": "<hex, the same for the same host, table and rows>",
//	 "rows": [{"timestamp": <unix seconds, start of the minute, hour or day>, "ip": "<address or other>",
//	           "consensus_up": n, "consensus_down": n, "siamux_up": n, "siamux_down": n,
//	           "quic_up": n, "quic_down": n, "consensus_up_packets": n, ..., "quic_down_packets": n}]}
//
// contrib/http-sync.schema.json is its JSON Schema. Every row carries its
// full current values, so a receiver upserts by (host, table, timestamp,
// ip) and never adds: a batch sent twice (after a crash between the
// receiver's answer and the local cursor's save, or a timeout after the
// receiver stored it) lands once. contrib/http-receiver is such a
// receiver, storing into SQLite.
//
// Only a 2xx answer moves the cursor. Every other answer is a failure,
// retried with backoff and jitter (package syncloop): a 3xx too, since a
// redirect followed by a client may turn the POST into a GET or drop its
// body; the error names where it points. Answers are read up to a bound,
// each request has a timeout, and a batch is bounded in rows and in bytes.
// The token is sent in the header only: it is in no log line, error or
// metric, and text a receiver answers is quoted with it masked.
//
// `collector sync -verify` asks the receiver what it holds: a GET of the
// same URL with the query host, table, since and until (unix seconds,
// since inclusive, until exclusive) is answered with
//
//	{"rows": <rows held>, "sums": {"consensus_up": <sum>, ..., "quic_down_packets": <sum>}}
//
// over those rows, and compared with the same counts of the local file,
// over each table's window up to the first row not yet sent. A receiver
// that does not answer GET cannot be verified; sending works without it.
package httpsync

// Command http-receiver is an example receiver of collector's HTTP sync
// (SYNC_HTTP_URL): it upserts every POSTed row into SQLite by (host,
// table, timestamp, ip), setting the values sent, never adding them, and
// answers GET with the totals `collector sync -verify` compares.
//
//	RECEIVER_TOKEN=secret http-receiver -listen 127.0.0.1:8080 -db fleet.db
//
// The token comes from the environment, not a flag, so that ps does not
// show it. Put it behind a TLS proxy (or give collector http:// to a
// loopback address only). The rows land in one table:
//
//	SELECT host, ip, sum(siamux_up) FROM rows WHERE tbl = 'traffic_daily' GROUP BY host, ip;
package main

import (
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	_ "modernc.org/sqlite"
)

var counters = []string{"consensus_up", "consensus_down", "siamux_up", "siamux_down", "quic_up", "quic_down",
	"consensus_up_packets", "consensus_down_packets", "siamux_up_packets", "siamux_down_packets", "quic_up_packets", "quic_down_packets"}

var tables = map[string]bool{"traffic_minute": true, "traffic_hourly": true, "traffic_daily": true}

// batch is a POSTed body; a receiver may also keep batch_id, the same
// for the same rows, to skip a batch it has.
type batch struct {
	Host, Table string
	Rows        []map[string]any // timestamp, ip and the counters, as json.Number
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	path := flag.String("db", "receiver.db", "SQLite file the rows go to")
	flag.Parse()
	db, err := sql.Open("sqlite", "file:"+*path+"?_pragma=busy_timeout(1000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err == nil {
		_, err = db.Exec("CREATE TABLE IF NOT EXISTS rows (host TEXT, tbl TEXT, timestamp INTEGER, ip TEXT, " +
			strings.Join(counters, " INTEGER, ") + " INTEGER, PRIMARY KEY (host, tbl, timestamp, ip))")
	}
	if err != nil {
		log.Fatal(err)
	}
	cols := "host, tbl, timestamp, ip, " + strings.Join(counters, ", ")
	set := make([]string, len(counters))
	for i, c := range counters {
		set[i] = c + " = excluded." + c // set, never add: a batch sent twice lands once
	}
	upsert := "INSERT INTO rows (" + cols + ") VALUES (?" + strings.Repeat(", ?", 3+len(counters)) + ") ON CONFLICT DO UPDATE SET " +
		strings.Join(set, ", ")
	token := os.Getenv("RECEIVER_TOKEN")
	if token == "" {
		log.Fatal("set RECEIVER_TOKEN to the token collector sends (SYNC_HTTP_TOKEN)")
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+token)) != 1 {
			http.Error(w, "wrong token", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodGet {
			q := r.URL.Query()
			sums := "count(*)"
			for _, c := range counters {
				sums += ", coalesce(sum(" + c + "), 0)"
			}
			values := make([]int64, 1+len(counters))
			dest := make([]any, len(values))
			for i := range values {
				dest[i] = &values[i]
			}
			err := db.QueryRow("SELECT "+sums+" FROM rows WHERE host = ? AND tbl = ? AND timestamp >= ? AND timestamp < ?",
				q.Get("host"), q.Get("table"), q.Get("since"), q.Get("until")).Scan(dest...)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			sumsOf := map[string]int64{}
			for i, c := range counters {
				sumsOf[c] = values[1+i]
			}
			json.NewEncoder(w).Encode(map[string]any{"rows": values[0], "sums": sumsOf})
			return
		}
		if r.Method != http.MethodPost {
			http.Error(w, "GET or POST", http.StatusMethodNotAllowed)
			return
		}
		var b batch
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20))
		dec.UseNumber() // counters go up to 2^64, past float64's exact integers
		if err := dec.Decode(&b); err != nil || !tables[b.Table] || b.Host == "" {
			http.Error(w, fmt.Sprintf("not a batch: %v", err), http.StatusBadRequest)
			return
		}
		tx, err := db.Begin()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer tx.Rollback()
		for _, row := range b.Rows {
			args := []any{b.Host, b.Table, row["timestamp"], row["ip"]}
			for _, c := range counters {
				args = append(args, row[c])
			}
			if slices.Contains(args, nil) {
				http.Error(w, "a row lacks a column", http.StatusBadRequest)
				return
			}
			if _, err := tx.Exec(upsert, args...); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		if err := tx.Commit(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	log.Printf("receiving on %s into %s", *listen, *path)
	srv := &http.Server{Addr: *listen, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute}
	log.Fatal(srv.ListenAndServe())
}

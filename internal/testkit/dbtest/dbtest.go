// Package dbtest holds what the tests of the packages that write the
// database share: traffic whose every counter differs, and a second
// connection that holds the file's write lock.
package dbtest

import (
	"database/sql"
	"strings"
	"sync"
	"testing"

	"github.com/back2basic/collector/traffic"
	_ "modernc.org/sqlite" // registers the pure Go driver "sqlite"
)

// Seeded returns a Traffic whose every counter differs, so a value landing
// in the wrong column shows.
func Seeded(seed uint64) traffic.Traffic {
	var t traffic.Traffic
	for c := range t {
		for d := range t[c] {
			cell := uint64(c*len(t[c]) + d + 1)
			t[c][d] = traffic.Tally{Bytes: seed*1000 + cell*7, Packets: seed*10 + cell}
		}
	}
	return t
}

// Sum adds up Seeded(seed) for every seed.
func Sum(seeds ...uint64) traffic.Traffic {
	var t traffic.Traffic
	for _, s := range seeds {
		x := Seeded(s)
		t.Add(&x)
	}
	return t
}

// LockFile takes the write lock of the database at path from a second
// connection, as the sqlite3 shell or a backup would, until the returned
// func is called or tb ends. A write then waits the store's LockWait
// before it fails with "database is locked".
func LockFile(tb testing.TB, path string) (unlock func()) {
	tb.Helper()
	uri := "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	db, err := sql.Open("sqlite", uri+"?_pragma=busy_timeout(50)&_txlock=immediate")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	tx, err := db.Begin() // BEGIN IMMEDIATE through the URI: the write lock
	if err != nil {
		tb.Fatal(err)
	}
	var once sync.Once
	unlock = func() {
		once.Do(func() {
			if err := tx.Rollback(); err != nil {
				tb.Error(err)
			}
		})
	}
	tb.Cleanup(unlock)
	return unlock
}

// CheckSame fails unless got holds exactly the rows of want, each keyed by
// its time and client.
func CheckSame[K comparable](tb testing.TB, what string, got, want map[K]traffic.Traffic) {
	tb.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok {
			tb.Errorf("%s: row %v missing", what, k)
		} else if g != w {
			tb.Errorf("%s: row %v = %+v, want %+v", what, k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			tb.Errorf("%s: unexpected row %v", what, k)
		}
	}
}

// ScanPeers calls add with each row of table, one of the tables of
// hostd's syncer peers (peers_minute, peers_hourly, peers_daily) in db.
func ScanPeers(tb testing.TB, db *sql.DB, table string, add func(at int64, ip string, inbound, outbound bool)) {
	tb.Helper()
	rows, err := db.Query("SELECT timestamp, ip, inbound, outbound FROM " + table)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var at int64
		var ip string
		var inbound, outbound bool
		if err := rows.Scan(&at, &ip, &inbound, &outbound); err != nil {
			tb.Fatal(err)
		}
		add(at, ip, inbound, outbound)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
}

package pgsync

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/pgtest"
	"github.com/back2basic/collector/internal/testkit/syncbuf"
	"github.com/back2basic/collector/store"
)

// centralHostd returns the central rows of a hostd table of host, one
// line each, in time order.
func centralHostd(t *testing.T, server *pgtest.Server, db, host string, table store.Table) []string {
	t.Helper()
	rows, err := server.Conn(db).Query(t.Context(), `SELECT timestamp, periods, rhp_ingress, rhp_egress, syncer_ingress, syncer_egress, paid_egress, egress_price, version, quic
FROM `+store.HostdTableName(table)+` WHERE host = $1 ORDER BY timestamp`, host)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var (
			at                        time.Time
			periods                   int
			rhpIn, rhpOut             int64
			syncerIn, syncerOut, paid *int64
			price                     float64
			version                   string
			quic                      bool
		)
		if err := rows.Scan(&at, &periods, &rhpIn, &rhpOut, &syncerIn, &syncerOut, &paid, &price, &version, &quic); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d %d %d/%d %s/%s %s %g %s %v", at.Unix(), periods, rhpIn, rhpOut, opt(syncerIn), opt(syncerOut), opt(paid), price, version, quic))
	}
	return out
}

// localHostd returns the local rows of a hostd table as centralHostd does.
func localHostd(t *testing.T, st *store.Store, table store.Table) []string {
	t.Helper()
	var out []string
	// The local rows, read through the copy's own source.
	rows, _, err := st.HostdChanges(t.Context(), table, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		var syncerIn, syncerOut, paid *int64
		if r.Syncer != nil {
			in, o := int64(r.Syncer.Ingress), int64(r.Syncer.Egress)
			syncerIn, syncerOut = &in, &o
		}
		if r.PaidEgress != nil {
			p := int64(*r.PaidEgress)
			paid = &p
		}
		out = append(out, fmt.Sprintf("%d %d %d/%d %s/%s %s %g %s %v", r.Start.Unix(), r.Periods, r.RHP.Ingress, r.RHP.Egress, opt(syncerIn), opt(syncerOut), opt(paid), r.EgressPrice, r.Version, r.QUIC))
	}
	return out
}

func opt(v *int64) string {
	if v == nil {
		return "NULL"
	}
	return fmt.Sprint(*v)
}

// hostd's tables reach the central database as they are locally, a period
// written again included, and a new database gets them whole.
func TestHostdTablesSynced(t *testing.T) {
	server := pgtest.New(t)
	h := newHistory(t)
	period := func(minute int, egress uint64, syncer bool) store.HostdFigures {
		f := store.HostdFigures{Start: day0.Add(time.Duration(minute) * time.Minute), Periods: 1, RHP: store.HostdData{Ingress: egress / 4, Egress: egress},
			EgressPrice: 80, Version: "v2.5.0"}
		if syncer {
			paid := egress / 2
			f.Syncer, f.PaidEgress, f.Version, f.QUIC = &store.HostdData{Ingress: 7, Egress: 9}, &paid, "v2.10.2", true
		}
		return f
	}
	write := func(periods ...store.HostdFigures) {
		t.Helper()
		if err := h.st.WriteHostdPeriods(t.Context(), periods); err != nil {
			t.Fatal(err)
		}
	}
	var log syncbuf.Buffer
	s := newSyncer(t, h.st, testConfig(server.CreateDatabase("fleet"), "host-a", &log))
	check := func(db string) {
		t.Helper()
		for _, table := range []store.Table{store.Minutes, store.Hours, store.Days} {
			local, central := localHostd(t, h.st, table), centralHostd(t, server, db, "host-a", table)
			if strings.Join(local, "\n") != strings.Join(central, "\n") || len(local) == 0 {
				t.Errorf("%s: central\n%s\nwant the local\n%s", store.HostdTableName(table), strings.Join(central, "\n"), strings.Join(local, "\n"))
			}
		}
	}
	write(period(55, 1000, false), period(60, 2000, true), period(65, 3000, true))
	if _, err := s.SyncOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	check("fleet")
	write(period(60, 2500, true), period(70, 100, true))
	if _, err := s.SyncOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	check("fleet")
	if n := len(centralHostd(t, server, "fleet", "host-a", store.Minutes)); n != 4 {
		t.Errorf("%d central periods, want 4", n)
	}

	other := newSyncer(t, h.st, testConfig(server.CreateDatabase("second"), "host-a", &log))
	if _, err := other.SyncOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	check("second")
}

package store

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// hostdPeriod returns a stored 5-minute period of hostd at start with
// syncer and paid bytes when given (nil: none).
func hostdPeriod(start time.Time, rhpIn, rhpOut uint64, syncer *HostdData, paid *uint64, price float64, version string) HostdFigures {
	return HostdFigures{Start: start, Periods: 1, RHP: HostdData{Ingress: rhpIn, Egress: rhpOut}, Syncer: syncer, PaidEgress: paid, EgressPrice: price, Version: version, QUIC: version != "v2.5.0"}
}

func ptr[T any](v T) *T { return &v }

func writeHostd(t *testing.T, st *Store, periods ...HostdFigures) {
	t.Helper()
	if err := st.WriteHostdPeriods(t.Context(), periods); err != nil {
		t.Fatal(err)
	}
}

func hostdSum(t *testing.T, st *Store, from, to time.Time) HostdFigures {
	t.Helper()
	f, _, err := st.HostdSum(t.Context(), Query{Since: from, Until: to})
	if err != nil {
		t.Fatal(err)
	}
	f.Start = f.Start.UTC()
	return f
}

func TestHostdPeriodsStoreSumAndRollUp(t *testing.T) {
	st := openStore(t)
	// 10:50 to 11:05: four periods over an hour boundary, the last of a
	// hostd that counts no syncer bytes and with a price of 0.
	p := []HostdFigures{
		hostdPeriod(t0.Add(50*time.Minute), 10, 100, &HostdData{1, 2}, ptr[uint64](90), 25, "v2.10.2"),
		hostdPeriod(t0.Add(55*time.Minute), 20, 200, &HostdData{3, 4}, ptr[uint64](150), 30, "v2.10.2"),
		hostdPeriod(t0.Add(60*time.Minute), 30, 300, &HostdData{5, 6}, ptr[uint64](400), 30, "v2.10.2"),
		hostdPeriod(t0.Add(65*time.Minute), 40, 400, nil, nil, 0, "v2.5.0"),
	}
	writeHostd(t, st, p...)

	got, err := st.HostdPeriods(t.Context(), t0, t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i].Start = got[i].Start.UTC()
	}
	if !reflect.DeepEqual(got, p) {
		t.Errorf("periods read back:\n%+v\nwant\n%+v", got, p)
	}

	// 10:00-11:00 from the hourly row, all its periods with syncer and paid.
	want := HostdFigures{Start: t0.Add(50 * time.Minute), Periods: 2, RHP: HostdData{30, 300}, Syncer: &HostdData{4, 6}, PaidEgress: ptr[uint64](240), EgressPrice: 30, Version: "v2.10.2", QUIC: true}
	if got := hostdSum(t, st, t0, t0.Add(time.Hour)); !reflect.DeepEqual(got, want) {
		t.Errorf("10:00-11:00: %+v, want %+v", got, want)
	}
	// A span with a period of the old hostd has no syncer or paid sum.
	want = HostdFigures{Start: t0.Add(50 * time.Minute), Periods: 4, RHP: HostdData{100, 1000}, EgressPrice: 0, Version: "v2.5.0"}
	if got := hostdSum(t, st, t0, t0.Add(2*time.Hour)); !reflect.DeepEqual(got, want) {
		t.Errorf("10:00-12:00: %+v, want %+v", got, want)
	}
	var hourly struct {
		periods, rhpOut int64
		syncer, paid    *int64
	}
	if err := st.db.QueryRow("SELECT periods, rhp_egress, syncer_egress, paid_egress FROM hostd_hourly WHERE timestamp = ?", t0.Add(time.Hour).Unix()).
		Scan(&hourly.periods, &hourly.rhpOut, &hourly.syncer, &hourly.paid); err != nil {
		t.Fatal(err)
	}
	if hourly.periods != 2 || hourly.rhpOut != 700 || hourly.syncer != nil || hourly.paid != nil {
		t.Errorf("hostd_hourly 11:00: %+v, want 2 periods, rhp egress 700, syncer and paid NULL", hourly)
	}

	// Writing a period again replaces it, and its hour and day with it.
	writeHostd(t, st, hostdPeriod(t0.Add(55*time.Minute), 25, 250, &HostdData{3, 4}, ptr[uint64](150), 30, "v2.10.2"))
	if got := hostdSum(t, st, t0, t0.Add(time.Hour)); got.RHP != (HostdData{35, 350}) || got.Periods != 2 {
		t.Errorf("after rewriting 10:55: %+v, want rhp 35/350 over 2 periods", got)
	}
	var daily int64
	if err := st.db.QueryRow("SELECT rhp_egress FROM hostd_daily WHERE timestamp = ?", day0.Unix()).Scan(&daily); err != nil || daily != 1050 {
		t.Errorf("hostd_daily rhp egress %d (%v), want 1050", daily, err)
	}

	if price, ok := st.EgressPrice(t0.Add(57 * time.Minute)); !ok || price != 30 {
		t.Errorf("egress price at 10:57 = %v, %v; want 30", price, ok)
	}
	if _, ok := st.EgressPrice(t0.Add(66 * time.Minute)); ok {
		t.Error("egress price at 11:06, where it was 0, is known")
	}
	if _, ok := st.EgressPrice(t0); ok {
		t.Error("egress price before any period is known")
	}
	if err := st.WriteHostdPeriods(t.Context(), []HostdFigures{hostdPeriod(t0.Add(time.Minute), 1, 1, nil, nil, 1, "v2.10.2")}); err == nil {
		t.Error("a period not on a 5-minute boundary was stored")
	}
}

// Retention deletes hostd's rows with the traffic of the same times; the
// daily rows stay, and a period retention passed is not stored again.
func TestHostdRetention(t *testing.T) {
	st := openStore(t)
	writeHostd(t, st,
		hostdPeriod(t0, 1, 10, nil, nil, 5, "v2.10.2"),
		hostdPeriod(t0.Add(24*time.Hour), 2, 20, nil, nil, 5, "v2.10.2"))
	now := t0.Add(24*time.Hour + 2*time.Hour)
	if err := st.maintain(t.Context(), now, now, Retention{Minutes: 12 * time.Hour, Hourly: 12 * time.Hour}, time.Minute); err != nil {
		t.Fatal(err)
	}
	count := func(table string) (n int) {
		t.Helper()
		if err := st.db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := []int{count("hostd_5m"), count("hostd_hourly"), count("hostd_daily")}; !reflect.DeepEqual(got, []int{1, 1, 2}) {
		t.Errorf("rows of hostd_5m, hostd_hourly, hostd_daily after retention: %v, want [1 1 2]", got)
	}
	writeHostd(t, st, hostdPeriod(t0.Add(5*time.Minute), 3, 30, nil, nil, 5, "v2.10.2"))
	if got := hostdSum(t, st, day0, day0.Add(48*time.Hour)); got.RHP != (HostdData{3, 30}) || got.Periods != 2 {
		t.Errorf("two days after a late write past retention: %+v, want rhp 3/30 over 2 periods", got)
	}
}

// A version 9 file gets the hostd tables, empty and usable.
func TestAddHostdUpgradesVersion9(t *testing.T) {
	path := filepath.Join(t.TempDir(), "traffic.db")
	openPath(t, path).Close()
	rawExec(t, path, "DROP TABLE hostd_5m", "DROP TABLE hostd_hourly", "DROP TABLE hostd_daily", "PRAGMA user_version = 9")
	st := openPath(t, path)
	writeHostd(t, st, hostdPeriod(t0, 1, 10, &HostdData{2, 3}, ptr[uint64](7), 5, "v2.10.2"))
	if got := hostdSum(t, st, t0, t0.Add(time.Hour)); got.Periods != 1 || *got.PaidEgress != 7 {
		t.Errorf("after the upgrade: %+v", got)
	}
}

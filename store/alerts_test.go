package store

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/traffic"
)

// version2Schema is the schema release 2 created: the traffic tables, the
// names, the view and the rollup state, before alerts.
func version2Schema() []string {
	return []string{createTableSQL(Minutes), createTableSQL(Hours), createTableSQL(Days), createNamesSQL, createViewSQL, createStateSQL}
}

// A version 2 file gets the alerts table and keeps its rows.
func TestUpgradeAddsAlerts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "traffic.db")
	var tr traffic.Traffic
	tr[traffic.Consensus][traffic.Up].Bytes = 700
	want := map[rowKey]traffic.Traffic{{600, clientOf("192.0.2.1")}: tr}
	stmts := append(version2Schema(),
		fmt.Sprintf("INSERT INTO traffic_minute (timestamp, ip, consensus_up) VALUES (600, '192.0.2.1', %d)", 700),
		"PRAGMA user_version = 2")
	rawExec(t, path, stmts...)

	st := openPath(t, path)
	checkRows(t, st, want)
	if got, fresh := schemaOf(t, st.db), schemaOf(t, openStore(t).db); !reflect.DeepEqual(got, fresh) {
		t.Errorf("upgraded schema:\n%v\nwant the one a new file gets:\n%v", got, fresh)
	}
	a := SavedAlert{ID: "a1", Kind: "quota", Subject: "up", Started: time.Unix(600, 0), Payload: []byte(`{}`)}
	if err := st.SaveAlert(t.Context(), a); err != nil {
		t.Fatalf("save an alert in the upgraded file: %v", err)
	}
}

func TestAlerts(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	at := func(min int64) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	firing := SavedAlert{ID: "f", Kind: "consensus_spike", Subject: "host", Started: at(0), Payload: []byte(`{"id":"f"}`)}
	old := SavedAlert{ID: "o", Kind: "consensus_spike", Subject: "192.0.2.1", Started: at(-600), Resolved: at(-500), Payload: []byte(`{"id":"o"}`)}
	recent := SavedAlert{ID: "r", Kind: "quota", Subject: "up", Started: at(-60), Payload: []byte(`{"id":"r"}`)}
	for _, a := range []SavedAlert{firing, old, recent} {
		if err := st.SaveAlert(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	// Resolving saves the same id again.
	recent.Resolved, recent.Payload = at(-10), []byte(`{"id":"r","status":"resolved"}`)
	if err := st.SaveAlert(ctx, recent); err != nil {
		t.Fatal(err)
	}

	check := func(since time.Time, want ...SavedAlert) {
		t.Helper()
		got, err := st.Alerts(ctx, since)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := describeAlerts(got), describeAlerts(want); !slices.Equal(g, w) {
			t.Errorf("Alerts(since %v):\n%s\nwant\n%s", since, strings.Join(g, "\n"), strings.Join(w, "\n"))
		}
	}
	check(at(-30), recent, firing)
	check(at(-1000), old, recent, firing)

	if err := st.ForgetAlerts(ctx, at(-100)); err != nil {
		t.Fatal(err)
	}
	check(at(-1000), recent, firing)
	// A firing alert is never forgotten.
	if err := st.ForgetAlerts(ctx, at(100)); err != nil {
		t.Fatal(err)
	}
	check(at(-1000), firing)
}

// describeAlerts writes alerts as lines to compare, times in unix seconds
// whatever their location.
func describeAlerts(alerts []SavedAlert) []string {
	var out []string
	for _, a := range alerts {
		resolved := int64(0)
		if !a.Resolved.IsZero() {
			resolved = a.Resolved.Unix()
		}
		out = append(out, fmt.Sprintf("%s %s %s started=%d resolved=%d %s", a.ID, a.Kind, a.Subject, a.Started.Unix(), resolved, a.Payload))
	}
	return out
}

func TestClassMinutes(t *testing.T) {
	st := openStore(t)
	a, b := clientOf("192.0.2.1"), clientOf("2001:db8::1")
	consensus := func(up, down uint64) traffic.Traffic {
		var tr traffic.Traffic
		tr[traffic.Consensus][traffic.Up].Bytes = up
		tr[traffic.Consensus][traffic.Down].Bytes = down
		tr[traffic.Siamux][traffic.Up].Bytes = 1 << 20 // never counted
		return tr
	}
	var siamuxOnly traffic.Traffic
	siamuxOnly[traffic.Siamux][traffic.Down].Bytes = 5000
	m := t0.Unix()
	write(t, st, map[rowKey]traffic.Traffic{
		{m - 60, a}:                consensus(1, 1), // before since
		{m, a}:                     consensus(100, 20),
		{m, b}:                     consensus(0, 7),
		{m, traffic.Other}:         consensus(3, 0),
		{m + 60, a}:                siamuxOnly, // a minute counted, without consensus
		{m + 120, b}:               siamuxOnly,
		{m + 120, traffic.Other}:   consensus(0, 9),
		{m + 120, clientOf("::1")}: siamuxOnly,
	})
	type row struct {
		minute int64
		client traffic.Client
		bytes  uint64
	}
	var got []row
	minutes := map[int64]bool{}
	var last int64
	err := st.ClassMinutes(t.Context(), traffic.Consensus, t0, func(cm ClassMinute) error {
		if cm.Minute.Unix() < last {
			t.Errorf("minute %d after %d: not in time order", cm.Minute.Unix(), last)
		}
		last = cm.Minute.Unix()
		minutes[last] = true
		if cm.Bytes > 0 {
			got = append(got, row{cm.Minute.Unix(), cm.Client, cm.Bytes})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantRows := []row{{m, a, 120}, {m, b, 7}, {m, traffic.Other, 3}, {m + 120, traffic.Other, 9}}
	if !sameRows(got, wantRows) {
		t.Errorf("rows with consensus bytes %v, want %v", got, wantRows)
	}
	if want := map[int64]bool{m: true, m + 60: true, m + 120: true}; !reflect.DeepEqual(minutes, want) {
		t.Errorf("minutes seen %v, want %v", minutes, want)
	}
}

// sameRows reports whether got and want hold the same rows, in any order.
func sameRows[R comparable](got, want []R) bool {
	if len(got) != len(want) {
		return false
	}
	count := map[R]int{}
	for _, r := range want {
		count[r]++
	}
	for _, r := range got {
		count[r]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestRHPMinutes(t *testing.T) {
	st := openStore(t)
	a, b := clientOf("192.0.2.1"), clientOf("2001:db8::1")
	rhp := func(siamuxUp, siamuxDown, quicUp, quicDown uint64) traffic.Traffic {
		var tr traffic.Traffic
		tr[traffic.Siamux][traffic.Up].Bytes, tr[traffic.Siamux][traffic.Down].Bytes = siamuxUp, siamuxDown
		tr[traffic.QUIC][traffic.Up].Bytes, tr[traffic.QUIC][traffic.Down].Bytes = quicUp, quicDown
		tr[traffic.Consensus][traffic.Up].Bytes = 1 << 20 // never counted
		tr[traffic.Siamux][traffic.Up].Packets = 1 << 30  // nor packets
		return tr
	}
	m := t0.Unix()
	write(t, st, map[rowKey]traffic.Traffic{
		{m - 60, a}:              rhp(1, 1, 1, 1), // before since
		{m, a}:                   rhp(100, 20, 3, 4),
		{m, b}:                   rhp(0, 0, 50, 0),
		{m, traffic.Other}:       rhp(7, 0, 0, 0),
		{m + 60, a}:              rhp(0, 0, 0, 0), // a minute counted, without RHP
		{m + 180, traffic.Other}: rhp(0, 9, 0, 1),
	})
	got := map[int64]uint64{}
	var last int64
	err := st.RHPMinutes(t.Context(), t0, func(minute time.Time, bytes uint64) error {
		if minute.Unix() <= last {
			t.Errorf("minute %d after %d: not in time order", minute.Unix(), last)
		}
		last = minute.Unix()
		got[last] = bytes
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[int64]uint64{m: 184, m + 60: 0, m + 180: 10}; !reflect.DeepEqual(got, want) {
		t.Errorf("RHP bytes by minute %v, want %v", got, want)
	}
}

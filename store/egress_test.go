package store

import (
	"maps"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/back2basic/collector/traffic"
)

// egressBySlot sums the up bytes of the rows of truth at or after from
// into 5-minute slots, leaving out slots that sent nothing.
func egressBySlot(truth map[rowKey]traffic.Traffic, from int64) map[int64]uint64 {
	out := make(map[int64]uint64)
	for k, tr := range truth {
		if k.start < from {
			continue
		}
		for c := range traffic.NumClasses {
			if b := tr[c][traffic.Up].Bytes; b > 0 {
				out[floorTo(k.start, egressSlot)] += b
			}
		}
	}
	return out
}

// storedSlots reads the nonzero slots EgressSlots gives over [since,
// until), and checks that the samples are whole slots without a gap.
func storedSlots(t *testing.T, st *Store, since, until int64) (map[int64]uint64, EgressSamples) {
	t.Helper()
	s, err := st.EgressSlots(t.Context(), time.Unix(since, 0), time.Unix(until, 0))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.To.Sub(s.From); len(s.Slots) > 0 && got != time.Duration(len(s.Slots))*egressSlot*time.Second {
		t.Errorf("%d samples from %v to %v", len(s.Slots), s.From, s.To)
	}
	out := make(map[int64]uint64)
	for i, b := range s.Slots {
		if b > 0 {
			out[s.From.Unix()+int64(i)*egressSlot] = b
		}
	}
	return out, s
}

// Every write adds its up bytes to its slots, late rows too, and
// retention deletes slots with the hourly rows; the samples begin where
// the table still covers.
func TestEgressSlots(t *testing.T) {
	st := openStore(t)
	truth := buildHistory(t, st)
	want := egressBySlot(truth, historyHorizons.hourlySince)
	if len(want) < 1000 {
		t.Fatalf("%d slots of history; the test lost its point", len(want))
	}
	got, s := storedSlots(t, st, at(0, 0, 0), historyEnd+3600)
	if !maps.Equal(got, want) {
		t.Errorf("egress slots differ from the up bytes written: %d slots, want %d", len(got), len(want))
	}
	if s.From.Unix() != historyHorizons.hourlySince || s.To.Unix() != historyEnd+3600 {
		t.Errorf("samples from %d to %d, want from %d (retention) to %d", s.From.Unix(), s.To.Unix(), historyHorizons.hourlySince, historyEnd+3600)
	}
	// A span within, 00:01 to 01:04 of day 3: whole slots only, from
	// 00:05 to 01:00.
	_, s = storedSlots(t, st, at(3, 0, 1), at(3, 1, 4))
	if s.From.Unix() != at(3, 0, 5) || s.To.Unix() != at(3, 1, 0) || len(s.Slots) != 11 {
		t.Errorf("samples of [00:01, 01:04) from %d to %d (%d), want the 11 whole slots from 00:05", s.From.Unix(), s.To.Unix(), len(s.Slots))
	}
}

// A new file has no samples until traffic is stored.
func TestEgressSlotsEmpty(t *testing.T) {
	st := openStore(t)
	if _, s := storedSlots(t, st, at(0, 0, 0), at(1, 0, 0)); len(s.Slots) != 0 || !s.From.IsZero() {
		t.Errorf("a new file has samples %+v", s)
	}
	write(t, st, map[rowKey]traffic.Traffic{{at(0, 10, 7), oldA}: upBytes(600)})
	got, s := storedSlots(t, st, at(0, 0, 0), at(1, 0, 0))
	if s.From.Unix() != at(0, 10, 5) || !maps.Equal(got, map[int64]uint64{at(0, 10, 5): 600}) {
		t.Errorf("after one row: samples from %d: %v", s.From.Unix(), got)
	}
}

// upBytes is traffic of n up bytes, split over the classes, and some
// down bytes, which are not egress.
func upBytes(n uint64) traffic.Traffic {
	var tr traffic.Traffic
	for c := range traffic.NumClasses {
		tr[c][traffic.Up].Bytes = n / uint64(traffic.NumClasses)
		tr[c][traffic.Down].Bytes = 7
	}
	return tr
}

// A version 7 file gets egress_5m filled from the minute rows it keeps,
// and covers from the first of them.
func TestUpgradeAddsEgressSlots(t *testing.T) {
	path := filepath.Join(t.TempDir(), "traffic.db")
	st := openPath(t, path)
	truth := map[rowKey]traffic.Traffic{
		{at(0, 1, 2), oldA}:  upBytes(300),
		{at(0, 1, 4), oldB}:  upBytes(600),
		{at(0, 1, 6), oldA}:  upBytes(900),
		{at(0, 2, 0), oldB}:  upBytes(0),
		{at(0, 9, 59), oldA}: upBytes(3),
	}
	write(t, st, truth)
	st.Close()
	// A version 7 file has neither these nor the tables of later steps.
	rawExec(t, path, "DROP TABLE egress_5m", "DROP TABLE egress_since",
		"DROP TABLE "+peerTable(Minutes), "DROP TABLE "+peerTable(Hours), "DROP TABLE "+peerTable(Days),
		"DROP TABLE hostd_5m", "DROP TABLE hostd_hourly", "DROP TABLE hostd_daily", "PRAGMA user_version = 7")

	st = openPath(t, path)
	got, s := storedSlots(t, st, at(0, 0, 0), at(1, 0, 0))
	if want := egressBySlot(truth, 0); !maps.Equal(got, want) {
		t.Errorf("slots after the upgrade = %v, want %v", got, want)
	}
	if s.From.Unix() != at(0, 1, 0) {
		t.Errorf("samples after the upgrade from %d, want the first minute row's slot %d", s.From.Unix(), at(0, 1, 0))
	}
	if got, want := schemaOf(t, st.db), schemaOf(t, openStore(t).db); !reflect.DeepEqual(got, want) {
		t.Errorf("upgraded schema:\n%v\nwant the one a new file gets:\n%v", got, want)
	}
}

package store

import (
	"path/filepath"
	"testing"

	"github.com/back2basic/collector/internal/testkit/dbtest"
	"github.com/back2basic/collector/traffic"
)

// TestWriteOnceAddsAnIDOnce: rows handed again under an id already
// written, also after the file is opened again, are not added twice; rows
// under another id are.
func TestWriteOnceAddsAnIDOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "traffic.db")
	v4, v6 := clientOf("192.0.2.1"), clientOf("2001:db8::1")
	first := rows(map[rowKey]traffic.Traffic{{t0.Unix(), v4}: dbtest.Seeded(1), {t0.Unix(), v6}: dbtest.Seeded(2)})
	second := rows(map[rowKey]traffic.Traffic{{t0.Unix(), v4}: dbtest.Seeded(3)})

	st := openPath(t, path)
	writeOnce(t, st, "boot/7", first, true)
	writeOnce(t, st, "boot/7", first, false)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = openPath(t, path)
	writeOnce(t, st, "boot/7", first, false) // a start after a crash before the pin went
	writeOnce(t, st, "boot/8", second, true)
	checkRows(t, st, map[rowKey]traffic.Traffic{{t0.Unix(), v4}: dbtest.Sum(1, 3), {t0.Unix(), v6}: dbtest.Seeded(2)})
}

func writeOnce(t *testing.T, st *Store, id string, rows []traffic.Row, wantAdded bool) {
	t.Helper()
	added, err := st.WriteOnce(t.Context(), id, rows, nil)
	if err != nil {
		t.Fatal(err)
	}
	if added != wantAdded {
		t.Errorf("WriteOnce(%s) added %v, want %v", id, added, wantAdded)
	}
}

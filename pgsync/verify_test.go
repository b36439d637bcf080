package pgsync

import (
	"fmt"
	"strings"
	"testing"

	"github.com/back2basic/collector/internal/testkit/pgtest"
	"github.com/back2basic/collector/internal/testkit/syncbuf"
)

// VerifyFile leaves out the rows written since the last sync, and names
// at most maxDiffs rows that differ, with a count of the others.
func TestVerifyFileBounded(t *testing.T) {
	server := pgtest.New(t)
	url := server.CreateDatabase("fleet")
	h := steppedHistory(t, 30)
	var log syncbuf.Buffer
	cfg := testConfig(url, "host-a", &log)
	if _, err := Once(t.Context(), h.path, cfg); err != nil {
		t.Fatal(err)
	}
	h.step(t) // not synced: left out
	var out strings.Builder
	if err := VerifyFile(t.Context(), h.path, cfg, &out); err != nil {
		t.Fatalf("VerifyFile = %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "rows of host host-a agree") || strings.Contains(out.String(), "; 0 rows written since the last sync") {
		t.Errorf("VerifyFile of equal rows with some unsynced wrote:\n%s", out.String())
	}

	var hourly int
	if err := server.Conn("fleet").QueryRow(t.Context(), "WITH planted AS (UPDATE traffic_hourly SET quic_up = quic_up + 1 RETURNING 1) SELECT count(*) FROM planted").Scan(&hourly); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err := VerifyFile(t.Context(), h.path, cfg, &out)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d rows of host host-a differ", hourly)) {
		t.Errorf("VerifyFile after %d hourly rows changed = %v", hourly, err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != maxDiffs+1 || lines[maxDiffs] != fmt.Sprintf("... and %d more", hourly-maxDiffs) {
		t.Errorf("VerifyFile wrote %d lines, want %d and a count:\n%s", len(lines), maxDiffs+1, out.String())
	}
}

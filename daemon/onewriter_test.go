package daemon

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// One writer at a time; the refusal names the holder's PID and is one a
// restart cannot mend; a released lock, or a lock file a dead daemon left,
// lets the next one in.
func TestWriterLock(t *testing.T) {
	db := filepath.Join(t.TempDir(), "sub", "collector.db")
	// What a SIGKILLed daemon leaves: the file with its PID, no flock.
	if err := os.MkdirAll(filepath.Dir(db), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db+".lock", []byte("99999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	first, err := lockWriter(db)
	if err != nil {
		t.Fatalf("a lock file with no holder blocked the start: %v", err)
	}
	pid := strconv.Itoa(os.Getpid())
	if b, _ := os.ReadFile(db + ".lock"); string(b) != pid+"\n" {
		t.Errorf("lock file holds %q, want this PID %s", b, pid)
	}

	// flock locks belong to an open file, so a second open in this
	// process is refused as another process would be.
	_, err = lockWriter(db)
	if err == nil || !IsCannotRun(err) {
		t.Fatalf("second lock: %v, want a refusal a restart cannot mend", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "PID "+pid) || !strings.Contains(msg, db) || strings.Contains(msg, "\n") {
		t.Errorf("refusal %q, want one line naming PID %s and the database", msg, pid)
	}

	if err := first.release(); err != nil {
		t.Fatal(err)
	}
	again, err := lockWriter(db)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	if err := again.release(); err != nil {
		t.Fatal(err)
	}
}

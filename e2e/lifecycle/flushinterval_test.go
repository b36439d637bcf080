package lifecycle

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/back2basic/collector/internal/testkit/selfexec"
)

// TestFlushIntervalRefused runs the real binary with a FLUSH_INTERVAL
// that does not tile a minute: it exits 2 with one line naming what is
// accepted, before it opens the database (so before anything is
// attached). The interface does not exist, so a binary that took the
// setting stops there, with another status, and attaches nothing.
func TestFlushIntervalRefused(t *testing.T) {
	db := filepath.Join(t.TempDir(), "collector.db")
	cmd := exec.Command(selfexec.Collector(), "run", "-config", os.DevNull, "-interface", "nosuch0", "-sqlite-path", db)
	cmd.Env = []string{"FLUSH_INTERVAL=7m"}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("FLUSH_INTERVAL=7m: %v, want exit status 2:\n%s", err, out)
	}
	want := `collector: FLUSH_INTERVAL="7m" (from environment): not an interval that tiles a minute; accepted: 1s, 2s, 3s, 4s, 5s, 6s, 10s, 12s, 15s, 20s, 30s or 1m` + "\n"
	if string(out) != want {
		t.Errorf("output %q, want the one line %q", out, want)
	}
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the database was touched before the settings were checked: %v", err)
	}
}

package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/kerneltest"
	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/internal/testkit/selfexec"
)

// TestUpgradeThroughInstallKeepsCounting installs collector with
// install.sh into a staged root, runs it pinned under real traffic,
// installs a new build over it and restarts it as systemd would: the
// stored totals equal the frame count exactly, with no gap.
func TestUpgradeThroughInstallKeepsCounting(t *testing.T) {
	kerneltest.RequireRoot(t)
	l := labtest.New(t)
	pins := filepath.Join(kerneltest.MountBPFFS(t), "collector")
	db := filepath.Join(t.TempDir(), "collector.db")
	args := []string{"-sqlite-path", db, "-flush-interval", "1m", "-live-interval", "0", "-reverse-dns", "0",
		"-pinned-maps", "1", "-pin-path", pins}
	t.Cleanup(func() { exec.Command(selfexec.Collector(), "detach", "-config", os.DevNull, "-pin-path", pins).Run() })

	rel, root := release(t), t.TempDir()
	script(t, rel, "install.sh", false, "--root", root)
	bin := filepath.Join(root, "usr/local/bin/collector")
	old := labtest.StartDaemon(t, l, bin, args...)

	stopTraffic := labtest.SteadyTraffic(t, l, 20*time.Millisecond)

	// The new build: appended bytes make another file that still runs,
	// with no toolchain needed to make it.
	newBuild := append(readFile(t, bin), 0)
	if err := os.WriteFile(filepath.Join(rel, "collector"), newBuild, 0o755); err != nil {
		t.Fatal(err)
	}
	if out := script(t, rel, "install.sh", false, "--root", root); !strings.Contains(out, "/usr/local/bin/collector") {
		t.Fatalf("install.sh did not install the new binary:\n%s", out)
	}
	// What systemctl restart does: SIGTERM, then start the new binary.
	if err := old.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // counted by the pinned programs alone
	upgraded := labtest.StartDaemon(t, l, bin, args...)
	if !strings.Contains(upgraded.Output(), "kept_pinned_links=true") {
		t.Error("the upgraded daemon attached again instead of taking over the pinned links")
	}
	if !bytes.Equal(readFile(t, bin), newBuild) {
		t.Fatal("the installed binary is not the new build")
	}
	time.Sleep(300 * time.Millisecond)

	counted := stopTraffic()
	if err := upgraded.Stop(); err != nil {
		t.Fatal(err)
	}
	labtest.AssertSame(t, labtest.Stored(t, db), counted)
}

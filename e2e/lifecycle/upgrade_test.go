package lifecycle

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/bpfgo"
	"github.com/back2basic/collector/internal/testkit/kerneltest"
	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/internal/testkit/selfexec"
)

// releasedLayoutCommit is a release whose pinned maps an upgrade must
// carry over: today's layout (104-byte values) when this test was made.
const releasedLayoutCommit = "5057a37"

// TestUpgradeCarriesOverPinnedCounts runs the daemon of an earlier
// release with pinned maps in the lab, stops it while its pinned programs
// keep counting real traffic, and starts this daemon on the same pins
// with maps of another layout (another MAX_CLIENTS, which changes the
// map's size as a new value layout would): the stored totals equal the
// capture exactly, and the journal says what was carried over.
func TestUpgradeCarriesOverPinnedCounts(t *testing.T) {
	kerneltest.RequireRoot(t)
	old := buildRelease(t, releasedLayoutCommit)
	for _, tc := range []bpfgo.TCMode{bpfgo.TCX, bpfgo.TCLegacy} {
		t.Run("tc="+string(tc), func(t *testing.T) {
			if tc == bpfgo.TCX {
				kerneltest.RequireTCX(t)
			}
			upgradeUnderTraffic(t, old, tc)
		})
	}
}

func upgradeUnderTraffic(t *testing.T, old string, tc bpfgo.TCMode) {
	l := labtest.New(t)
	pins := filepath.Join(kerneltest.MountBPFFS(t), "collector")
	db := filepath.Join(t.TempDir(), "collector.db")
	args := []string{"-sqlite-path", db, "-flush-interval", "1m", "-live-interval", "0",
		"-reverse-dns", "0", "-pinned-maps", "1", "-pin-path", pins, "-tc-mode", string(tc)}

	first := labtest.StartDaemon(t, l, old, args...)
	stopTraffic := labtest.SteadyTraffic(t, l, 20*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // counted by the earlier release's pinned programs alone

	second := labtest.StartDaemon(t, l, selfexec.Collector(), append(args, "-max-clients", "4096")...)
	second.WaitFor(t, carriedLine)
	time.Sleep(500 * time.Millisecond)
	counted := stopTraffic()
	if err := second.Stop(); err != nil {
		t.Fatal(err)
	}
	labtest.AssertSame(t, labtest.Stored(t, db), counted)

	out := second.Output()
	if strings.Contains(out, "lost") {
		t.Errorf("the upgrade's journal says something was lost:\n%s", out)
	}
	if line := lineWith(out, carriedLine); !strings.Contains(line, "clients=") || strings.Contains(line, "bytes=0 ") {
		t.Errorf("the carry-over line names no clients or bytes: %q", line)
	}
	if left, _ := os.ReadDir(filepath.Join(pins, "carried")); len(left) != 0 {
		t.Errorf("pins of the earlier layout left after the carry-over: %v", left)
	}
}

// carriedLine is the journal's line about what an upgrade carried over.
const carriedLine = "carried over what the pinned maps of an earlier layout counted"

// lineWith returns the first line of out that contains s.
func lineWith(out, s string) string {
	for line := range strings.Lines(out) {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

// buildRelease builds the collector of commit from this repository's git
// history into a temporary directory, from the module cache alone. Where
// git, go or the commit is missing it skips, or fails in CI.
func buildRelease(t *testing.T, commit string) string {
	t.Helper()
	for _, tool := range []string{"git", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOutsideCI(t, "needs "+tool+" to build the earlier release")
		}
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		skipOutsideCI(t, "needs the git history of this repository: "+err.Error())
	}
	src := t.TempDir()
	archive := exec.Command("git", "archive", "--format=tar", commit)
	archive.Dir = strings.TrimSpace(string(top))
	extract := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	extract.Stdin = pipe
	var archiveErr strings.Builder
	archive.Stderr = &archiveErr
	if err := extract.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		skipOutsideCI(t, "needs commit "+commit+" in the git history: "+strings.TrimSpace(archiveErr.String()))
	}
	if err := extract.Wait(); err != nil {
		t.Fatalf("extract commit %s: %v", commit, err)
	}
	bin := filepath.Join(t.TempDir(), "collector-"+commit)
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = src
	build.Env = append(os.Environ(), "GOPROXY=off", "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build commit %s: %v\n%s", commit, err, out)
	}
	return bin
}

// skipOutsideCI skips the test saying why, or fails it in CI, where a
// skipped test would hide a regression.
func skipOutsideCI(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s, and CI must not skip it", why)
	}
	t.Skip(why)
}

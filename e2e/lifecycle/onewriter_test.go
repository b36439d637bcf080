package lifecycle

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/bpfgo"
	"github.com/back2basic/collector/internal/testkit/kerneltest"
	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/internal/testkit/selfexec"
)

// TestOneWriter starts a second daemon on the database of a running one,
// in the modes where its attach would succeed beside the first one's
// (XDP_MODE=tc, TCX where the kernel has it, pinned maps): it is refused
// with exit status 3 and one line naming the first one's PID, and the
// first counts on, exactly against the capture, while a report and an
// export read the database beside it. The first one starts over the lock
// file of a daemon killed with SIGKILL, which must not block it.
func TestOneWriter(t *testing.T) {
	kerneltest.RequireRoot(t)
	l := labtest.New(t)
	pins := filepath.Join(kerneltest.MountBPFFS(t), "collector")
	t.Cleanup(func() { exec.Command(selfexec.Collector(), "detach", "-config", os.DevNull, "-pin-path", pins).Run() })
	tc := bpfgo.TCLegacy
	if kerneltest.HaveTCX() {
		tc = bpfgo.TCX
	}
	db := filepath.Join(t.TempDir(), "collector.db")
	args := []string{"-sqlite-path", db, "-flush-interval", "1s", "-live-interval", "0", "-reverse-dns", "0",
		"-xdp-mode", string(bpfgo.XDPViaTC), "-tc-mode", string(tc), "-pinned-maps", "1", "-pin-path", pins}

	crashed := labtest.StartDaemon(t, l, selfexec.Collector(), args...)
	crashed.Kill()
	if b, err := os.ReadFile(db + ".lock"); err != nil || string(b) != strconv.Itoa(crashed.Pid())+"\n" {
		t.Fatalf("lock file of the killed daemon: %q, %v; want its PID %d", b, err, crashed.Pid())
	}
	first := labtest.StartDaemon(t, l, selfexec.Collector(), args...)

	stopTraffic := labtest.SteadyTraffic(t, l, 20*time.Millisecond)
	time.Sleep(1500 * time.Millisecond) // a flush or more: rows for the readers
	second := exec.Command("ip", append([]string{"netns", "exec", l.HostNS, selfexec.Collector(), "run", "-config", os.DevNull, "-interface", l.HostIf}, args...)...)
	out, err := second.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Errorf("second daemon: %v, want exit status 3", err)
	}
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 ||
		!strings.Contains(lines[0], "another collector (PID "+strconv.Itoa(first.Pid())+") is writing "+db) {
		t.Errorf("second daemon said:\n%s\nwant one line naming the running one's PID %d", out, first.Pid())
	}
	for _, reader := range [][]string{{"report", "-by", "client"}, {"export", "-format", "jsonl"}} {
		out, err := exec.Command(selfexec.Collector(), append(reader, "-config", os.DevNull, "-sqlite-path", db)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), l.ClientAddrs[0].String()) {
			t.Errorf("collector %s beside the daemon: %v\n%s\nwant the lab's clients", reader[0], err, out)
		}
	}
	time.Sleep(500 * time.Millisecond) // counting on after the refusal

	counted := stopTraffic()
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	labtest.AssertSame(t, labtest.Stored(t, db), counted)
}

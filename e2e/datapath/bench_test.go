package datapath

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/floodtest"
	"github.com/back2basic/collector/internal/testkit/kerneltest"
	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/internal/testkit/selfexec"
)

// BenchmarkDaemonMillionClientsStored runs the real daemon, live table on,
// against a database holding a day of a million forged clients with rows
// of their own, and reports the most memory it held (peak-RSS-MiB, the
// kernel's VmHWM) over its start and ten live prints.
func BenchmarkDaemonMillionClientsStored(b *testing.B) {
	kerneltest.RequireRoot(b)
	db := filepath.Join(b.TempDir(), "flood.db")
	now := time.Now()
	if err := floodtest.WriteDay(b.Context(), db, 1_000_000, time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, now.Location())); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		l := labtest.New(b)
		d := labtest.StartDaemon(b, l, selfexec.Collector(), "-sqlite-path", db, "-live-interval", "1s", "-reverse-dns", "0")
		// The start reads today's busiest clients before the first print.
		deadline := time.Now().Add(time.Minute)
		for strings.Count(d.Output(), "STORED TRAFFIC") < 10 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		peak, err := vmHWM(d.Pid())
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Stop(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
	}
}

// vmHWM is the peak resident set of process pid, in KiB.
func vmHWM(pid int) (int, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("pid %d: no VmHWM", pid)
}

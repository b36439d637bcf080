// Package labtest is the lab of package lab as tests use it: built for
// one test, with the daemon run in it, traffic driven through it and
// counted, and all of it removed when the test ends, pass or fail; and
// what the daemon stored, held against that count.
package labtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/kerneltest"
	"github.com/back2basic/collector/lab"
)

// New builds a lab for tb and removes it when tb ends. Building one needs
// root: without it tb skips, or fails in CI (kerneltest.RequireRoot).
func New(tb testing.TB) *lab.Lab {
	tb.Helper()
	return NewWith(tb, lab.Options{})
}

// NewWith is New for a lab built with opts.
func NewWith(tb testing.TB, opts lab.Options) *lab.Lab {
	tb.Helper()
	kerneltest.RequireRoot(tb)
	l, err := lab.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Error(err)
		}
	})
	return l
}

// Daemon is a daemon a test started, with what it has written so far.
type Daemon struct {
	*lab.Daemon
	output string // the file its stdout and stderr go to
}

// StartDaemon runs bin as the daemon in l with args (lab.StartDaemon),
// and stops it with SIGTERM when tb ends, if tb has not; its output is
// logged when tb fails.
func StartDaemon(tb testing.TB, l *lab.Lab, bin string, args ...string) *Daemon {
	tb.Helper()
	out, err := os.Create(filepath.Join(tb.TempDir(), "collector.log"))
	if err != nil {
		tb.Fatal(err)
	}
	defer out.Close() // the daemon has its own copy
	d := &Daemon{output: out.Name()}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("collector output:\n%s", d.Output())
		}
	})
	d.Daemon, err = l.StartDaemon(bin, out, args...)
	if err != nil {
		tb.Fatalf("%v\n%s", err, d.Output())
	}
	tb.Cleanup(func() { d.Stop() })
	return d
}

// Output is what the daemon has written so far, stdout and stderr.
func (d *Daemon) Output() string {
	b, _ := os.ReadFile(d.output)
	return string(b)
}

// WaitFor waits up to 10 s for the daemon to log msg.
func (d *Daemon) WaitFor(tb testing.TB, msg string) {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if strings.Contains(d.Output(), msg) {
			return
		}
	}
	tb.Fatalf("the daemon did not log %q within 10s", msg)
}

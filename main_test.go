package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/back2basic/collector/cli"
	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/lab"
)

// collectorBin is collector for the tests that run it: a link, named
// collector, to this test binary, which is collector under that name
// (TestMain). So the tests build nothing and need no Go where they run,
// such as the VMs of make test-kernels.
var collectorBin string

func TestMain(m *testing.M) {
	// Run by that name, through the link or as a copy install.sh put in
	// place: the daemon and the other commands, as the product's binary.
	if filepath.Base(os.Args[0]) == "collector" {
		os.Exit(cli.Main(os.Args[1:]))
	}
	dir, err := os.MkdirTemp("", "collector-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	collectorBin = filepath.Join(dir, "collector")
	self, err := os.Executable()
	if err == nil {
		err = os.Symlink(self, collectorBin)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "link this test binary as collector:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startDaemon starts collector as the daemon in l for tb
// (labtest.StartDaemon).
func startDaemon(tb testing.TB, l *lab.Lab, args ...string) *labtest.Daemon {
	tb.Helper()
	return labtest.StartDaemon(tb, l, collectorBin, args...)
}

// Package selfexec makes a test binary the product: run under the name
// collector, it runs collector's commands (cli.Main) instead of its tests.
// The end-to-end tests run that binary as the daemon and the other
// commands, so they build nothing and need no Go where they run, such as
// the VMs of make test-kernels.
package selfexec

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/back2basic/collector/cli"
)

// collector is the link Main made, named collector, to this test binary.
var collector string

// Main is the TestMain of a package whose tests run collector. Run by
// that name, through the link or as a copy install.sh put in place, the
// binary is collector; otherwise it links itself as collector in a
// temporary directory (Collector) and runs the tests.
func Main(m *testing.M) {
	if filepath.Base(os.Args[0]) == "collector" {
		os.Exit(cli.Main(os.Args[1:]))
	}
	dir, err := os.MkdirTemp("", "collector-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	collector = filepath.Join(dir, "collector")
	self, err := os.Executable()
	if err == nil {
		err = os.Symlink(self, collector)
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

// Collector is the path that runs this test binary as collector.
func Collector() string {
	if collector == "" {
		panic("selfexec.Collector: the package's TestMain must call selfexec.Main")
	}
	return collector
}

package cli

import (
	"fmt"
	"io"

	"github.com/back2basic/collector/bpf"
)

// version and commit are stamped by `make build` and `make deb` with
// -ldflags -X; a plain `go build` leaves these defaults.
var (
	version = "dev"
	commit  = "unknown"
)

// printVersion writes what a bug report needs to name the build: the
// version, the commit, and the hash of the embedded BPF object, which
// tells whether two builds run the same datapath.
func printVersion(w io.Writer, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("version takes no arguments, got %q", args)
	}
	_, err := fmt.Fprintf(w, "collector %s\ncommit %s\nbpf object sha256 %s\n", version, commit, bpf.ObjectSHA256())
	return err
}

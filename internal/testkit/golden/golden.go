// Package golden compares formatted output with files under testdata/,
// and rewrites them when the test runs with -update.
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// Check compares got with testdata/<name>.golden (spaces in name become
// underscores), or writes the file when the test runs with -update.
func Check(tb testing.TB, name, got string) {
	tb.Helper()
	file := filepath.Join("testdata", strings.ReplaceAll(name, " ", "_")+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		tb.Fatalf("%v (go test -update writes it)", err)
	}
	if got != string(want) {
		tb.Errorf("output differs from %s (go test -update rewrites it):\ngot:\n%s\nwant:\n%s", file, got, want)
	}
}

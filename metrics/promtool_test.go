package metrics

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// promtool runs promtool with args, stdin on its standard input, and
// fails the test when it finds a problem. Without promtool the test is
// skipped, but not in CI (CI set), which installs it to run these checks.
func promtool(t *testing.T, stdin string, args ...string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not installed, and CI must run this check (apt-get install prometheus)")
		}
		t.Skip("promtool is not installed (apt-get install prometheus); CI runs this check")
	}
	cmd := exec.CommandContext(t.Context(), path, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

package cli_test

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/back2basic/collector/internal/testkit/selfexec"
)

// TestMain makes this test binary collector when run by that name, so
// the tests see what an operator sees: the output and the exit status.
func TestMain(m *testing.M) { selfexec.Main(m) }

// commands are the commands the help must list, in its order.
var commands = []string{"run", "check", "demo", "report", "export", "sync", "detach", "version"}

// collector runs collector with args and returns its stdout, its stderr
// and its exit status.
func collector(t *testing.T, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(selfexec.Collector(), args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// TestHelpListsCommands: collector -h, --help and help print the commands
// first, one line each, then where the settings are, and exit 0; a bare
// collector prints the same as a usage error, on stderr with status 2.
func TestHelpListsCommands(t *testing.T) {
	for _, tt := range []struct {
		args       []string
		wantStatus int
		onStderr   bool
	}{
		{[]string{"-h"}, 0, false},
		{[]string{"--help"}, 0, false},
		{[]string{"help"}, 0, false},
		{nil, 2, true},
	} {
		t.Run(strings.Join(append([]string{"collector"}, tt.args...), " "), func(t *testing.T) {
			stdout, stderr, status := collector(t, tt.args...)
			help, other := stdout, stderr
			if tt.onStderr {
				help, other = stderr, stdout
			}
			if status != tt.wantStatus || other != "" {
				t.Fatalf("exit status %d, want %d; the other stream holds %q", status, tt.wantStatus, other)
			}
			lines := strings.Split(strings.TrimSuffix(help, "\n"), "\n")
			if len(lines) != len(commands)+1 {
				t.Fatalf("%d lines, want one per command and the settings line:\n%s", len(lines), help)
			}
			for i, name := range commands {
				if !strings.HasPrefix(lines[i], "collector "+name+" ") {
					t.Errorf("line %d is %q, want the command %s", i+1, lines[i], name)
				}
			}
			if last := lines[len(commands)]; !strings.HasSuffix(last, "collector help settings") {
				t.Errorf("the last line is %q, want where the settings are listed: collector help settings", last)
			}
		})
	}
}

// TestHelpSettings: collector help settings lists the settings on stdout,
// the list collector run -h shows.
func TestHelpSettings(t *testing.T) {
	stdout, stderr, status := collector(t, "help", "settings")
	if status != 0 || stderr != "" {
		t.Fatalf("exit status %d, stderr %q", status, stderr)
	}
	for _, want := range []string{"-interface string", `(env INTERFACE, default "")`, `(env LOG_LEVEL, default "info")`} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the settings lack %q:\n%s", want, stdout)
		}
	}
	if _, runHelp, _ := collector(t, "run", "-h"); runHelp != stdout {
		t.Errorf("collector run -h shows other settings:\n%s", runHelp)
	}
}

// TestUnknownCommand: a word that is no command, a flag before any
// command, and a help topic that does not exist are each one line naming
// what was given and what is accepted, with exit status 2.
func TestUnknownCommand(t *testing.T) {
	for _, tt := range []struct {
		args   []string
		given  string
		accept []string
	}{
		{[]string{"bogus"}, "bogus", append(commands, "help")},
		{[]string{"-interface", "eth0"}, "-interface", append(commands, "help")},
		{[]string{"help", "bogus"}, "bogus", []string{"collector help settings"}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			stdout, stderr, status := collector(t, tt.args...)
			if status != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 {
				t.Fatalf("exit status %d, stdout %q, stderr %q; want status 2 and one line on stderr", status, stdout, stderr)
			}
			for _, want := range append([]string{`"` + tt.given + `"`}, tt.accept...) {
				if !strings.Contains(stderr, want) {
					t.Errorf("%q does not name %s", stderr, want)
				}
			}
		})
	}
}

// Package check implements `collector check`: it inspects the machine the
// daemon is about to run on (kernel, BTF, bpffs, capabilities, the BPF
// programs themselves, each interface, the XDP and TC modes, the database
// path) and prints one line per item with ok, warn or FAIL, and what to do
// about every problem.
//
// Nothing is attached and nothing is left behind: the programs are loaded
// and closed again, XDP support is read from netlink rather than tried (a
// native XDP attach resets some NICs), and the database directory is tested
// with a temporary file that is removed at once.
package check

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/back2basic/collector/bpfgo"
	"github.com/back2basic/collector/config"
)

// Checker inspects one machine. Its paths are settings so that tests can
// point it at fixture trees; the zero value checks the host it runs on.
type Checker struct {
	// Proc is where procfs is mounted; empty means /proc.
	Proc string
	// Sys is where sysfs is mounted; empty means /sys.
	Sys string

	// probe probes the kernel's features; nil means bpfgo.Probe.
	probe func() error
	// load loads the datapath without attaching it; nil means bpfgo.Load.
	// Tests replace it where a real load would make the output depend on
	// the kernel.
	load func(bpfgo.Config) (io.Closer, error)
}

// Run checks the host for cfg and writes the report to out. It returns an
// error, whose text counts the problems, when there is any.
func Run(ctx context.Context, cfg *config.Config, out io.Writer) error {
	return (&Checker{}).Run(ctx, cfg, out)
}

// Run checks the machine for cfg and writes the report to out: one line
// per item, a line saying what to do under each problem or warning, and a
// verdict. It returns an error, whose text counts the problems, when there
// is any, so that the command exits non-zero.
func (c *Checker) Run(ctx context.Context, cfg *config.Config, out io.Writer) error {
	results, err := c.check(ctx, cfg)
	if err != nil {
		return err
	}
	report, problems := format(results)
	if _, err := io.WriteString(out, report); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if problems > 0 {
		return fmt.Errorf("%s found", count(problems, "problem"))
	}
	return nil
}

// check runs every check in the order they are printed. The interfaces
// are where the time goes (netlink round trips), so ctx is honoured there.
func (c *Checker) check(ctx context.Context, cfg *config.Config) ([]result, error) {
	results := []result{
		c.kernel(),
		c.btf(),
		c.bpffs(cfg.Pinned),
		pins(cfg.PinPath, cfg.Pinned),
		c.capabilities(),
		c.programs(cfg),
	}
	ifaces, r := c.interfaces(cfg.Interfaces)
	results = append(results, r)
	for _, name := range ifaces {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		results = append(results, c.iface(name, cfg.XDPMode)...)
	}
	results = append(results, c.tcMode(cfg.TCMode), database(cfg.SQLitePath))
	return results, ctx.Err()
}

func (c *Checker) procPath(rel string) string { return filepath.Join(or(c.Proc, "/proc"), rel) }
func (c *Checker) sysPath(rel string) string  { return filepath.Join(or(c.Sys, "/sys"), rel) }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// status is the outcome of one check. Only fail counts as a problem: a
// warning is something the operator may want to know that does not stop
// the daemon.
type status int

const (
	ok status = iota
	warn
	fail
)

func (s status) String() string {
	return [...]string{"ok", "warn", "FAIL"}[s]
}

// result is one line of the report.
type result struct {
	name   string
	status status
	detail string
	fix    string // what to do; set on every warn and fail
	// more is printed in full under the fix: the whole verifier log of a
	// refused program, which an operator needs to report the cause.
	more string
}

// format lays the results out in aligned columns, each fix under its
// detail, then the verdict, and counts the problems.
func format(results []result) (string, int) {
	width := 0
	for _, r := range results {
		width = max(width, len(r.name))
	}
	var b strings.Builder
	var problems []string
	for _, r := range results {
		fmt.Fprintf(&b, "%-4s  %-*s  %s\n", r.status, width, r.name, r.detail)
		if r.fix != "" {
			fmt.Fprintf(&b, "%-4s  %-*s  fix: %s\n", "", width, "", r.fix)
		}
		for line := range strings.Lines(r.more) {
			fmt.Fprintf(&b, "%-4s  %-*s  | %s", "", width, "", line)
		}
		if r.more != "" && !strings.HasSuffix(r.more, "\n") {
			b.WriteString("\n")
		}
		if r.status == fail {
			problems = append(problems, r.name)
		}
	}
	if len(problems) == 0 {
		b.WriteString("ready: collector can run here\n")
	} else {
		fmt.Fprintf(&b, "%s: %s\n", count(len(problems), "problem"), strings.Join(problems, ", "))
	}
	return b.String(), len(problems)
}

// count says "1 problem" or "3 problems".
func count(n int, noun string) string {
	if n != 1 {
		noun += "s"
	}
	return fmt.Sprintf("%d %s", n, noun)
}

// oneLine keeps the first line of err, so a multi-line kernel message
// cannot break the report's layout.
func oneLine(err error) string {
	line, _, _ := strings.Cut(err.Error(), "\n")
	return line
}

// Package cli is collector's command line: the commands, their help, and
// the exit status of each failure. The binary's main only hands it the
// arguments; the end-to-end tests' binaries do the same when run under
// the name collector (internal/testkit/selfexec).
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/cilium/ebpf"

	"github.com/back2basic/collector/bpfgo"
	"github.com/back2basic/collector/check"
	"github.com/back2basic/collector/config"
	"github.com/back2basic/collector/daemon"
	"github.com/back2basic/collector/httpsync"
	"github.com/back2basic/collector/pgsync"
	"github.com/back2basic/collector/report"
)

// A command is one word of collector's command line, with its line in
// the help: collector NAME ARGS, then what it does.
type command struct {
	name, args, what string
	run              func(ctx context.Context, args []string) error
}

// commands are the commands in the order the help lists them.
var commands = []command{
	{"run", "[flags]", "run the daemon (what collector.service does)", runDaemon},
	{"check", "[flags]", "check that this machine can run it, and say what to fix", checkMachine},
	{"demo", "[flags]", "run it for real in a throwaway network lab", demo},
	{"report", "[flags]", "totals per client, class or period: today, a month, a billing period...", func(ctx context.Context, args []string) error {
		return report.Report(ctx, args, os.Stdout)
	}},
	{"export", "[flags]", "the stored rows of a span as CSV or JSON lines", func(ctx context.Context, args []string) error {
		return report.Export(ctx, args, os.Stdout)
	}},
	{"sync", "-once|-verify [flags]", "send every row the central PostgreSQL and the HTTP endpoint lack (-once), or compare them with the local rows (-verify), and exit", syncOnce},
	{"detach", "[flags]", "remove pinned programs, maps and TC filters", detach},
	{"version", "", "version, commit and the hash of the BPF object", func(_ context.Context, args []string) error {
		return printVersion(os.Stdout, args)
	}},
}

// Exit statuses. collector.service does not restart on exitSettings and
// exitCannotRun (RestartPreventExitStatus): a restart would change nothing.
const (
	exitFailure   = 1 // may succeed on a later try: the unit restarts
	exitSettings  = 2 // the command line or a setting is wrong
	exitCannotRun = 3 // this machine cannot run it: the kernel or privileges
)

// Main runs the command that args (the process's arguments after its
// name) ask for and returns the process's exit status. SIGINT and SIGTERM
// cancel the command: the daemon detaches, stores what it counted and
// returns.
func Main(args []string) int {
	if len(args) == 0 {
		// Nothing asked: the commands, as a usage error, so that a unit
		// or script that still runs a bare collector for the daemon stops
		// at once with a status collector.service does not restart on.
		usage(os.Stderr)
		return exitSettings
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := run(ctx, args[0], args[1:])
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	// The error line holds the verifier's last lines only; the whole log
	// is what an operator needs to report a refusal.
	var verr *ebpf.VerifierError
	if errors.As(err, &verr) {
		fmt.Fprintf(os.Stderr, "collector: the verifier's whole log:\n%+v\n", verr)
	}
	fmt.Fprintln(os.Stderr, "collector:", err)
	return exitStatus(err)
}

func exitStatus(err error) int {
	switch {
	case errors.As(err, new(config.Error)):
		return exitSettings
	case daemon.IsCannotRun(err):
		return exitCannotRun
	}
	return exitFailure
}

// run runs the command name with args, or the help.
func run(ctx context.Context, name string, args []string) error {
	switch name {
	case "help", "-h", "-help", "--help":
		return help(os.Stdout, args)
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(ctx, args)
		}
	}
	accepted := []string{}
	for _, c := range commands {
		accepted = append(accepted, c.name)
	}
	return config.Error{Err: fmt.Errorf("unknown command %q; accepted: %s, help", name, strings.Join(accepted, ", "))}
}

// help writes what collector help asks for: the commands, or with the
// topic settings every setting with its env name and default.
func help(w io.Writer, topic []string) error {
	switch {
	case len(topic) == 0:
		usage(w)
		return nil
	case len(topic) == 1 && topic[0] == "settings":
		_, err := config.Load("collector run", []string{"-h"}, os.LookupEnv, w)
		return err
	}
	return config.Error{Err: fmt.Errorf("no help on %q; accepted: collector help, collector help settings", strings.Join(topic, " "))}
}

// usage writes the commands, one line each, and where the settings are.
func usage(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "%s\t%s\n", strings.TrimSpace("collector "+c.name+" "+c.args), c.what)
	}
	tw.Flush()
	fmt.Fprintln(w, "The settings of run, check, sync and detach (env file, environment or flags): collector help settings")
}

func loadConfig(cmd string, args []string) (*config.Config, error) {
	cfg, err := config.Load(cmd, args, os.LookupEnv, os.Stderr)
	if err != nil {
		return nil, config.Error{Err: err}
	}
	return cfg, nil
}

func runDaemon(ctx context.Context, args []string) error {
	cfg, err := loadConfig("collector run", args)
	if err != nil {
		return err
	}
	return daemon.Collect(ctx, cfg, daemon.Build{Version: version, Commit: commit}, newLogger(cfg.LogLevel))
}

func checkMachine(ctx context.Context, args []string) error {
	cfg, err := loadConfig("collector check", args)
	if err != nil {
		return err
	}
	return check.Run(ctx, cfg, os.Stdout)
}

func detach(_ context.Context, args []string) error {
	cfg, err := loadConfig("collector detach", args)
	if err != nil {
		return err
	}
	return bpfgo.DetachAll(cfg.PinPath, cfg.Interfaces)
}

// syncOnce is collector sync -once: every row the central PostgreSQL and
// the HTTP endpoint lack is sent, then it exits; the daemon's own settings
// say where, and which of the two. With -verify instead, it compares what
// each holds with the local rows.
func syncOnce(ctx context.Context, args []string) error {
	mode := ""
	rest := slices.DeleteFunc(slices.Clone(args), func(a string) bool {
		switch a {
		case "-once", "--once", "-verify", "--verify":
			mode = strings.TrimLeft(a, "-")
			return true
		}
		return false
	})
	if len(rest) != len(args)-1 {
		return config.Error{Err: errors.New("collector sync needs one of -once (it sends what is pending and exits; the daemon syncs on its own) or -verify (it compares the central rows with the local ones)")}
	}
	cfg, err := loadConfig("collector sync -"+mode, rest)
	if err != nil {
		return err
	}
	if cfg.SyncURL == "" && cfg.SyncHTTPURL == "" {
		return config.Error{Err: errors.New("SYNC_POSTGRES_URL and SYNC_HTTP_URL are empty; accepted: either or both, in the env file, the environment or -sync-postgres-url, -sync-http-url")}
	}
	log := newLogger(cfg.LogLevel)
	var errs []error
	// each runs the mode of one target.
	each := func(once, verify func() error) {
		if mode == "verify" {
			errs = append(errs, verify())
		} else {
			errs = append(errs, once())
		}
	}
	if cfg.SyncURL != "" {
		syncCfg := daemon.SyncConfig(cfg, log)
		each(func() error { _, err := pgsync.Once(ctx, cfg.SQLitePath, syncCfg); return err },
			func() error { return pgsync.VerifyFile(ctx, cfg.SQLitePath, syncCfg, os.Stdout) })
	}
	if cfg.SyncHTTPURL != "" {
		syncCfg := daemon.HTTPSyncConfig(cfg, log)
		each(func() error { _, err := httpsync.Once(ctx, cfg.SQLitePath, syncCfg); return err },
			func() error { return httpsync.VerifyFile(ctx, cfg.SQLitePath, syncCfg, os.Stdout) })
	}
	return errors.Join(errs...)
}

func newLogger(level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	// systemd sets JOURNAL_STREAM when stderr goes to the journal, which
	// stamps every line itself: a second timestamp is noise.
	if os.Getenv("JOURNAL_STREAM") != "" {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

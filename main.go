// Command collector counts, per remote IP address, the bytes and packets a
// Sia host exchanges on its consensus, siamux and QUIC ports, with an XDP
// program on ingress and a TC program on egress, and stores them minute by
// minute in SQLite.
//
//	collector [run] [flags]   run the daemon (what collector.service does)
//	collector check [flags]   check that this machine can run it, and say what to fix
//	collector demo            run it for real in a throwaway network lab
//	collector report [flags]  totals per client, class or period: today, a month, a billing period...
//	collector export [flags]  the stored rows of a span as CSV or JSON lines
//	collector sync -once      send every row the central PostgreSQL lacks, and exit
//	collector sync -verify    compare the central rows with the local ones (exit 1 when they differ)
//	collector detach          remove pinned programs, maps and TC filters
//	collector version         version, commit and the hash of the BPF object
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/cilium/ebpf"

	"github.com/back2basic/collector/bpfgo"
	"github.com/back2basic/collector/check"
	"github.com/back2basic/collector/config"
	"github.com/back2basic/collector/daemon"
	"github.com/back2basic/collector/pgsync"
	"github.com/back2basic/collector/report"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:])
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return
	}
	// The error line holds the verifier's last lines only; the whole log
	// is what an operator needs to report a refusal.
	var verr *ebpf.VerifierError
	if errors.As(err, &verr) {
		fmt.Fprintf(os.Stderr, "collector: the verifier's whole log:\n%+v\n", verr)
	}
	fmt.Fprintln(os.Stderr, "collector:", err)
	os.Exit(exitStatus(err))
}

// Exit statuses. collector.service does not restart on exitSettings and
// exitCannotRun (RestartPreventExitStatus): a restart would change nothing.
const (
	exitFailure   = 1 // may succeed on a later try: the unit restarts
	exitSettings  = 2 // a setting is wrong
	exitCannotRun = 3 // this machine cannot run it: the kernel or privileges
)

func exitStatus(err error) int {
	switch {
	case errors.As(err, new(config.Error)):
		return exitSettings
	case daemon.IsCannotRun(err):
		return exitCannotRun
	}
	return exitFailure
}

func loadConfig(cmd string, args []string) (*config.Config, error) {
	cfg, err := config.Load(cmd, args, os.LookupEnv, os.Stderr)
	if err != nil {
		return nil, config.Error{Err: err}
	}
	return cfg, nil
}

func run(ctx context.Context, args []string) error {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		cfg, err := loadConfig("collector", args)
		if err != nil {
			return err
		}
		return daemon.Collect(ctx, cfg, daemon.Build{Version: version, Commit: commit}, newLogger(cfg.LogLevel))
	case "check":
		cfg, err := loadConfig("collector check", args)
		if err != nil {
			return err
		}
		return check.Run(ctx, cfg, os.Stdout)
	case "demo":
		return demo(ctx, args)
	case "report":
		return report.Report(ctx, args, os.Stdout)
	case "export":
		return report.Export(ctx, args, os.Stdout)
	case "sync":
		return syncOnce(ctx, args)
	case "version":
		return printVersion(os.Stdout, args)
	case "detach":
		cfg, err := loadConfig("collector detach", args)
		if err != nil {
			return err
		}
		return bpfgo.DetachAll(cfg.PinPath, cfg.Interfaces)
	}
	return fmt.Errorf("unknown command %q; accepted: run, check, demo, detach, report, export, sync, version", cmd)
}

// syncOnce is collector sync -once: every row the central PostgreSQL
// lacks is sent, then it exits; the daemon's own settings say where. With
// -verify instead, it compares the central rows with the local ones.
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
	if cfg.SyncURL == "" {
		return config.Error{Err: errors.New("SYNC_POSTGRES_URL is empty; accepted: postgres://user:password@host:port/database in the env file, the environment or -sync-postgres-url")}
	}
	syncCfg := daemon.SyncConfig(cfg, newLogger(cfg.LogLevel))
	if mode == "verify" {
		return pgsync.VerifyFile(ctx, cfg.SQLitePath, syncCfg, os.Stdout)
	}
	_, err = pgsync.Once(ctx, cfg.SQLitePath, syncCfg)
	return err
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

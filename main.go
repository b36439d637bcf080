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
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"

	"github.com/back2basic/collector/agg"
	"github.com/back2basic/collector/bpfgo"
	"github.com/back2basic/collector/check"
	"github.com/back2basic/collector/config"
	"github.com/back2basic/collector/live"
	"github.com/back2basic/collector/report"
	"github.com/back2basic/collector/sdnotify"
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
	var bad settingsError
	switch {
	case errors.As(err, &bad):
		return exitSettings
	case errors.As(err, new(cannotRunError)):
		return exitCannotRun
	}
	return exitFailure
}

// cannotRunError is a start the datapath can never make on this machine.
type cannotRunError struct{ error }

func (e cannotRunError) Unwrap() error { return e.error }

// startError marks err, from loading or attaching the datapath, as one a
// restart cannot mend, where it is.
func startError(err error) error {
	if bpfgo.Unrecoverable(err) {
		return cannotRunError{err}
	}
	return err
}

// settingsError is a refusal of the settings.
type settingsError struct{ error }

func (e settingsError) Unwrap() error { return e.error }

func loadConfig(cmd string, args []string) (*config.Config, error) {
	cfg, err := config.Load(cmd, args, os.LookupEnv, os.Stderr)
	if err != nil {
		return nil, settingsError{err}
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
		return daemon(ctx, cfg, newLogger(cfg.LogLevel))
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
	case "version":
		return printVersion(os.Stdout, args)
	case "detach":
		cfg, err := loadConfig("collector detach", args)
		if err != nil {
			return err
		}
		return bpfgo.DetachAll(cfg.PinPath, cfg.Interfaces)
	}
	return fmt.Errorf("unknown command %q; accepted: run, check, demo, detach, report, export, version", cmd)
}

// interfaceCheckInterval is how often interfaces that went away are looked
// for again.
const interfaceCheckInterval = 2 * time.Second

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

// daemon counts until ctx is done, then detaches, drains and flushes one
// last time.
func daemon(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	if len(cfg.Interfaces) == 0 {
		iface, err := config.DefaultRouteInterface("/proc/net")
		if err != nil {
			return err
		}
		log.Info("INTERFACE is unset; using the interface of the default route", "interface", iface)
		cfg.Interfaces = []string{iface}
	}

	// The database first: a path that cannot be written should stop us
	// before anything is attached.
	store, err := agg.Open(cfg.SQLitePath, log.With("component", "agg"))
	if err != nil {
		return err
	}
	defer store.Close()

	bpfCfg := bpfgo.Config{Ports: cfg.Ports, MaxClients: cfg.MaxClients, Logger: log.With("component", "bpf")}
	if cfg.Pinned {
		bpfCfg.PinPath = cfg.PinPath
	}
	counters, err := bpfgo.Load(bpfCfg)
	if err != nil {
		return startError(err)
	}
	defer counters.Close()

	ifaces, err := counters.AttachAll(cfg.Interfaces, cfg.XDPMode, cfg.TCMode, log.With("component", "bpf"))
	if err != nil {
		return startError(err)
	}
	defer ifaces.Close()
	go ifaces.Watch(ctx, interfaceCheckInterval)
	log.Info("collector started", "database", cfg.SQLitePath, "flush_interval", cfg.FlushInterval,
		"consensus_ports", cfg.Ports.Consensus, "siamux_ports", cfg.Ports.Siamux, "quic_ports", cfg.Ports.QUIC,
		"pinned", cfg.Pinned)
	if err := sdnotify.Notify(sdnotify.Ready); err != nil {
		log.Warn("systemd will time out the start", "err", err)
	}

	// The live table's stored block is kept in memory from every flush;
	// it starts from what the database holds today, read before the
	// first flush can add to it.
	var (
		today  *live.Today
		stored func([]agg.Row)
	)
	if cfg.LiveInterval > 0 {
		today = live.NewToday(0, nil)
		if err := today.Load(ctx, store); err != nil {
			log.Warn("the live table's stored block starts empty", "err", err)
		}
		stored = today.Stored
	}

	var resolver *agg.Resolver
	if cfg.ReverseDNS {
		resolver = agg.NewResolver(ctx, agg.ResolverConfig{})
	}
	aggregator := agg.NewAggregator(counters, store, agg.Config{
		Interval:   cfg.FlushInterval,
		Log:        log.With("component", "agg"),
		Resolver:   resolver,
		Retention:  agg.Retention{Minutes: cfg.MinuteRetention, Hourly: cfg.HourlyRetention},
		MaxPending: cfg.MaxPendingRows,
		// Clients that moved real data keep their place in the counter
		// map when a flood fills it; half of it stays for new ones.
		MinClientBytes: cfg.MinClientBytes,
		Seeder:         counters,
		MaxSeeded:      int(cfg.MaxClients / 2),
		Stored:         stored,
	})

	// The aggregator gets its own context: on shutdown the programs are
	// detached first, so its last drain holds every packet counted.
	aggCtx, stopAgg := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAgg()
	aggDone := make(chan error, 1)
	go func() { aggDone <- aggregator.Run(aggCtx) }()

	liveDone := make(chan error, 1)
	if cfg.LiveInterval > 0 {
		printer := live.NewPrinter(counters, today, os.Stderr, cfg.LiveInterval, log.With("component", "live"))
		go func() { liveDone <- printer.Run(ctx) }()
	} else {
		liveDone <- nil
	}

	<-ctx.Done()
	if cfg.Pinned {
		log.Info("stopping: the pinned programs keep counting for the next start; storing what was counted")
	} else {
		log.Info("stopping: detaching, then storing what was counted")
	}
	if err := sdnotify.Notify(sdnotify.Stopping); err != nil {
		log.Warn("tell systemd we are stopping", "err", err)
	}
	ifaces.Close()
	stopAgg()
	err = errors.Join(<-aggDone, <-liveDone)
	if err == nil {
		log.Info("collector stopped")
	}
	return err
}

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
	var bad settingsError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &bad):
		fmt.Fprintln(os.Stderr, "collector:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "collector:", err)
		os.Exit(1)
	}
}

// settingsError is a refusal of the settings: exit status 2, on which
// collector.service does not restart, since a restart would change
// nothing.
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
		return err
	}
	defer counters.Close()

	ifaces, err := counters.AttachAll(cfg.Interfaces, cfg.XDPMode, cfg.TCMode, log.With("component", "bpf"))
	if err != nil {
		return err
	}
	defer ifaces.Close()
	go ifaces.Watch(ctx, interfaceCheckInterval)
	log.Info("collector started", "database", cfg.SQLitePath, "flush_interval", cfg.FlushInterval,
		"consensus_ports", cfg.Ports.Consensus, "siamux_ports", cfg.Ports.Siamux, "quic_ports", cfg.Ports.QUIC,
		"pinned", cfg.Pinned)
	if err := sdnotify.Notify(sdnotify.Ready); err != nil {
		log.Warn("systemd will time out the start", "err", err)
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
	})

	// The aggregator gets its own context: on shutdown the programs are
	// detached first, so its last drain holds every packet counted.
	aggCtx, stopAgg := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAgg()
	aggDone := make(chan error, 1)
	go func() { aggDone <- aggregator.Run(aggCtx) }()

	liveDone := make(chan error, 1)
	if cfg.LiveInterval > 0 {
		printer := live.NewPrinter(counters, store, os.Stderr, cfg.LiveInterval, log.With("component", "live"))
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

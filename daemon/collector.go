package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/back2basic/collector/agg"
	"github.com/back2basic/collector/bpfgo"
	"github.com/back2basic/collector/config"
	"github.com/back2basic/collector/dns"
	"github.com/back2basic/collector/live"
	"github.com/back2basic/collector/store"
)

// interfaceCheckInterval is how often interfaces that went away are looked
// for again.
const interfaceCheckInterval = 2 * time.Second

// cannotRunError is a start the datapath can never make on this machine:
// the kernel refuses the programs or lacks a feature, or the privileges
// are missing. Restarting changes nothing.
type cannotRunError struct{ error }

func (e cannotRunError) Unwrap() error { return e.error }

// IsCannotRun reports whether err is a start that can never succeed on
// this machine.
func IsCannotRun(err error) bool {
	return errors.As(err, new(cannotRunError))
}

// datapathError marks err, from loading or attaching the datapath, as one
// a restart cannot mend, where it is.
func datapathError(err error) error {
	if bpfgo.Unrecoverable(err) {
		return cannotRunError{err}
	}
	return err
}

// Collect runs the collector as cfg says until ctx is done: it counts on
// cfg.Interfaces, stores every flush, prints the live table, and on the
// way out detaches (unless pinned), drains one last time and stores that.
func Collect(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	if len(cfg.Interfaces) == 0 {
		iface, err := config.DefaultRouteInterface("/proc/net")
		if err != nil {
			return err
		}
		log.Info("INTERFACE is unset; using the interface of the default route", "interface", iface)
		cfg.Interfaces = []string{iface}
	}
	c := &collector{cfg: cfg, log: log}
	if err := Run(ctx, log, c.services()...); err != nil {
		return err
	}
	log.Info("collector stopped")
	return nil
}

// collector holds the parts of a running collector as its services
// create them.
type collector struct {
	cfg *config.Config
	log *slog.Logger

	store      *store.Store
	counters   *bpfgo.Counters
	aggregator *agg.Aggregator
	consumers  []agg.Consumer
	today      *live.Today
	resolver   *dns.Resolver
	ifaces     *bpfgo.Interfaces
}

// services lists the collector's services in the order they start; they
// stop in the reverse order. The interfaces are attached after the
// aggregator runs, so on the way out they are detached before its last
// drain, which then holds every packet counted.
func (c *collector) services() []Service {
	services := []Service{
		// The database first: a path that cannot be written should
		// stop us before anything is attached.
		{Name: "database", Start: c.openStore, Stop: func() error { return c.store.Close() }},
		{Name: "datapath", Start: c.loadDatapath, Stop: func() error { return c.counters.Close() }},
	}
	if c.cfg.LiveInterval > 0 {
		services = append(services, Service{Name: "today's totals", Start: c.loadToday})
	}
	if c.cfg.ReverseDNS {
		services = append(services, Service{Name: "reverse DNS", Start: c.newResolver, Run: func(ctx context.Context) error { return c.resolver.Run(ctx) }})
	}
	services = append(services,
		Service{Name: "aggregator", Start: c.newAggregator, Run: func(ctx context.Context) error { return c.aggregator.Run(ctx) }},
		Service{Name: "interfaces", Start: c.attach, Run: c.watch, Stop: func() error { return c.ifaces.Close() }},
	)
	if c.cfg.LiveInterval > 0 {
		services = append(services, Service{Name: "live table", Run: c.printLive})
	}
	return append(services, Service{Name: "journal", Start: c.logStarted, Stop: c.logStopping})
}

func (c *collector) openStore(context.Context) error {
	var err error
	c.store, err = store.Open(c.cfg.SQLitePath, store.Options{
		Log:            c.log.With("component", "store"),
		Retention:      store.Retention{Minutes: c.cfg.MinuteRetention, Hourly: c.cfg.HourlyRetention},
		MaintainBudget: c.cfg.FlushInterval / 2,
	})
	if err == nil {
		c.consumers = append(c.consumers, c.store)
	}
	return err
}

func (c *collector) loadDatapath(context.Context) error {
	bpfCfg := bpfgo.Config{Ports: c.cfg.Ports, MaxClients: c.cfg.MaxClients, Logger: c.log.With("component", "bpf")}
	if c.cfg.Pinned {
		bpfCfg.PinPath = c.cfg.PinPath
	}
	var err error
	c.counters, err = bpfgo.Load(bpfCfg)
	return datapathError(err)
}

// loadToday reads what the database holds for today, before the first
// flush can add to it, for the live table's stored block.
func (c *collector) loadToday(ctx context.Context) error {
	c.today = live.NewToday(0, nil)
	if err := c.today.Load(ctx, c.store); err != nil {
		c.log.Warn("the live table's stored block starts empty", "err", err)
	}
	c.consumers = append(c.consumers, c.today)
	return nil
}

// newResolver looks up the names of the clients of each period.
func (c *collector) newResolver(context.Context) error {
	c.resolver = dns.New(dns.Config{Save: c.store, Log: c.log.With("component", "dns")})
	c.consumers = append(c.consumers, c.resolver)
	return nil
}

func (c *collector) newAggregator(context.Context) error {
	c.aggregator = agg.NewAggregator(c.counters, agg.Config{
		Interval:   c.cfg.FlushInterval,
		Log:        c.log.With("component", "agg"),
		MaxPending: c.cfg.MaxPendingRows,
		// Clients that moved real data keep their place in the counter
		// map when a flood fills it; half of it stays for new ones.
		MinClientBytes: c.cfg.MinClientBytes,
		Seeder:         c.counters,
		MaxSeeded:      int(c.cfg.MaxClients / 2),
	}, c.consumers...)
	return nil
}

func (c *collector) attach(context.Context) error {
	var err error
	c.ifaces, err = c.counters.AttachAll(c.cfg.Interfaces, c.cfg.XDPMode, c.cfg.TCMode, c.log.With("component", "bpf"))
	return datapathError(err)
}

func (c *collector) watch(ctx context.Context) error {
	c.ifaces.Watch(ctx, interfaceCheckInterval)
	return nil
}

func (c *collector) printLive(ctx context.Context) error {
	return live.NewPrinter(c.counters, c.today, os.Stderr, c.cfg.LiveInterval, c.log.With("component", "live")).Run(ctx)
}

func (c *collector) logStarted(context.Context) error {
	c.log.Info("collector started", "database", c.cfg.SQLitePath, "flush_interval", c.cfg.FlushInterval,
		"consensus_ports", c.cfg.Ports.Consensus, "siamux_ports", c.cfg.Ports.Siamux, "quic_ports", c.cfg.Ports.QUIC,
		"pinned", c.cfg.Pinned)
	return nil
}

func (c *collector) logStopping() error {
	if c.cfg.Pinned {
		c.log.Info("stopping: the pinned programs keep counting for the next start; storing what was counted")
	} else {
		c.log.Info("stopping: detaching, then storing what was counted")
	}
	return nil
}

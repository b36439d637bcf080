package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/back2basic/collector/agg"
	"github.com/back2basic/collector/alert"
	"github.com/back2basic/collector/beside"
	"github.com/back2basic/collector/billing"
	"github.com/back2basic/collector/bpf"
	"github.com/back2basic/collector/bpfgo"
	"github.com/back2basic/collector/config"
	"github.com/back2basic/collector/cost"
	"github.com/back2basic/collector/dns"
	"github.com/back2basic/collector/hostd"
	"github.com/back2basic/collector/hostdpoll"
	"github.com/back2basic/collector/httpsync"
	"github.com/back2basic/collector/internal/syncloop"
	"github.com/back2basic/collector/live"
	"github.com/back2basic/collector/metrics"
	"github.com/back2basic/collector/pgsync"
	"github.com/back2basic/collector/report"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
	"github.com/back2basic/collector/web"
	"github.com/back2basic/collector/web/dashboard"
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

// Build names the binary running, for the metrics.
type Build struct {
	Version, Commit string
}

// Collect runs the collector as cfg says until ctx is done: it counts on
// cfg.Interfaces, stores every flush, prints the live table, serves the
// metrics, the API and the dashboard, and on the way out detaches (unless
// pinned), drains one last time and stores that.
func Collect(ctx context.Context, cfg *config.Config, build Build, log *slog.Logger) error {
	if len(cfg.Interfaces) == 0 {
		iface, err := config.DefaultRouteInterface("/proc/net")
		if err != nil {
			return err
		}
		log.Info("INTERFACE is unset; using the interface of the default route", "interface", iface)
		cfg.Interfaces = []string{iface}
	}
	cycle, err := billing.NewCycle(cfg.BillingDay, time.Local)
	if err != nil {
		return config.Error{Err: err}
	}
	c := &collector{cfg: cfg, build: build, log: log, billing: cycle}
	if err := Run(ctx, log, c.services()...); err != nil {
		return err
	}
	log.Info("collector stopped")
	return nil
}

// collector holds the parts of a running collector as its services
// create them.
type collector struct {
	cfg     *config.Config
	build   Build
	log     *slog.Logger
	billing billing.Cycle // BILLING_DAY in the local time zone
	// prices gives hostd's egress price for the value and margin of
	// egress; nil while hostd is not read, which leaves them unknown.
	prices cost.PriceSource

	writer     *writerLock
	store      *store.Store
	counters   *bpfgo.Counters
	aggregator *agg.Aggregator
	today      *live.Today
	resolver   *dns.Resolver
	hostd      *hostdpoll.Poller
	syncer     *pgsync.Syncer
	httpSyncer *httpsync.Syncer
	alerts     *alert.Detector
	webhook    *alert.Webhook
	metrics    *metrics.Metrics
	http       *web.Server
	ifaces     *bpfgo.Interfaces
}

// services lists the collector's services in the order they start; they
// stop in the reverse order. The interfaces are attached after the
// aggregator runs, so on the way out they are detached before its last
// drain, which then holds every packet counted. The HTTP server starts
// once everything it reads exists, and stops first.
func (c *collector) services() []Service {
	services := []Service{
		// The database first: a second daemon on it, or a path that
		// cannot be written, should stop us before anything is attached
		// or a pinned map is touched.
		{Name: "one writer", Start: c.lockDatabase, Stop: func() error { return c.writer.release() }},
		{Name: "database", Start: c.openStore, Stop: func() error { return c.store.Close() }},
		{Name: "datapath", Start: c.loadDatapath, Stop: func() error { return c.counters.Close() }},
	}
	if c.cfg.LiveInterval > 0 {
		services = append(services, Service{Name: "today's totals", Start: c.loadToday})
	}
	if c.cfg.ReverseDNS {
		services = append(services, Service{Name: "reverse DNS", Start: c.newResolver, Run: func(ctx context.Context) error { return c.resolver.Run(ctx) }})
	}
	// The sync and the alerts stop after the aggregator, so the last
	// flush's rows and alerts go out too.
	if c.cfg.SyncURL != "" {
		services = append(services, Service{Name: "PostgreSQL sync", Start: c.newSyncer,
			Run: func(ctx context.Context) error { return c.syncer.Run(ctx) }, Stop: func() error { return c.syncer.Close() }})
	}
	if c.cfg.SyncHTTPURL != "" {
		services = append(services, Service{Name: "HTTP sync", Start: c.newHTTPSyncer,
			Run: func(ctx context.Context) error { return c.httpSyncer.Run(ctx) }, Stop: func() error { return c.httpSyncer.Close() }})
	}
	services = append(services, Service{Name: "alerts", Start: c.newAlerts, Run: c.runAlerts})
	// hostd's periods go to the alerts as they are stored.
	if c.cfg.HostdPassword != "" {
		services = append(services, Service{Name: "hostd's metrics", Start: c.newHostdPoller, Run: func(ctx context.Context) error { return c.hostd.Run(ctx) }})
	}
	if c.cfg.HTTPListen != "" {
		services = append(services, Service{Name: "metrics", Start: c.newMetrics})
	}
	services = append(services,
		Service{Name: "aggregator", Start: c.newAggregator, Run: func(ctx context.Context) error { return c.aggregator.Run(ctx) }},
		Service{Name: "interfaces", Start: c.attach, Run: c.watch, Stop: func() error { return c.ifaces.Close() }},
		// Once the interfaces run the new programs, nothing counts in
		// pinned maps of an earlier layout any more.
		Service{Name: "carry-over", Start: c.carryOver},
	)
	if c.cfg.HostdPassword != "" {
		services = append(services, c.peerService())
	}
	if c.cfg.HTTPListen != "" {
		services = append(services, Service{Name: "http server", Start: c.startHTTP, Run: func(ctx context.Context) error { return c.http.Run(ctx) }})
	}
	if c.cfg.LiveInterval > 0 {
		services = append(services, Service{Name: "live table", Run: c.printLive})
	}
	return append(services, Service{Name: "journal", Start: c.logStarted, Stop: c.logStopping})
}

// consumers lists, in order, what the aggregator hands each closed period
// to: the parts the services before it made, less those a setting turns
// off. The database comes first, with the sync hooked to it, which sends
// what the database has just written.
func (c *collector) consumers() []agg.Consumer {
	consumers := []agg.Consumer{agg.Then(c.store, c.afterFlush)}
	if c.today != nil {
		consumers = append(consumers, c.today)
	}
	if c.resolver != nil {
		consumers = append(consumers, c.resolver)
	}
	consumers = append(consumers, c.alerts)
	if c.metrics != nil {
		consumers = append(consumers, c.metrics)
	}
	return consumers
}

func (c *collector) lockDatabase(context.Context) error {
	var err error
	c.writer, err = lockWriter(c.cfg.SQLitePath)
	return err
}

func (c *collector) openStore(context.Context) error {
	var err error
	c.store, err = store.Open(c.cfg.SQLitePath, store.Options{
		Log:            c.log.With("component", "store"),
		Retention:      store.Retention{Minutes: c.cfg.MinuteRetention, Hourly: c.cfg.HourlyRetention},
		MaintainBudget: c.cfg.FlushInterval / 2,
		MaxClientRows:  c.cfg.MaxClientRows,
	})
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
	return nil
}

// newResolver looks up the names of the clients of each period.
func (c *collector) newResolver(context.Context) error {
	c.resolver = dns.New(dns.Config{Save: c.store, Log: c.log.With("component", "dns")})
	return nil
}

// newHostdPoller reads hostd's metrics into the database on a goroutine
// of its own: hostd down or slow never holds up counting or a flush.
func (c *collector) newHostdPoller(context.Context) error {
	client, err := hostd.New(c.cfg.HostdURL, c.cfg.HostdPassword)
	if err != nil {
		return config.Error{Err: err}
	}
	c.hostd = &hostdpoll.Poller{Client: client, Store: judgedStore{c.store, c.alerts}, Log: c.log.With("component", "hostd"),
		Interval: c.cfg.HostdInterval, MaxBack: c.cfg.MinuteRetention}
	return nil
}

// judgedStore stores hostd's periods, then hands them to the alerts,
// which judge them against the wire (the divergence alert).
type judgedStore struct {
	*store.Store
	alerts *alert.Detector
}

func (s judgedStore) WriteHostdPeriods(ctx context.Context, periods []store.HostdFigures) error {
	if err := s.Store.WriteHostdPeriods(ctx, periods); err != nil {
		return err
	}
	s.alerts.Hostd(periods)
	return nil
}

// newSyncer makes the sync to the central PostgreSQL, which sends what
// each flush stored, after the store took it.
func (c *collector) newSyncer(context.Context) error {
	var err error
	c.syncer, err = pgsync.New(c.store, c.syncConfig())
	if err != nil {
		return config.Error{Err: err}
	}
	return nil
}

// syncConfig is the sync's part of the settings.
func (c *collector) syncConfig() pgsync.Config {
	return SyncConfig(c.cfg, c.log.With("component", "sync"))
}

// SyncConfig is the sync's part of cfg: what the daemon and collector
// sync -once use.
func SyncConfig(cfg *config.Config, log *slog.Logger) pgsync.Config {
	return pgsync.Config{URL: cfg.SyncURL, HostID: cfg.HostID, Interval: cfg.SyncInterval,
		Tables: cfg.SyncTables, Partitions: cfg.SyncPartitions, Retention: cfg.SyncRetention, Log: log}
}

// newHTTPSyncer makes the sync to the HTTP endpoint, which sends what
// each flush stored, after the store took it.
func (c *collector) newHTTPSyncer(context.Context) error {
	var err error
	c.httpSyncer, err = httpsync.New(c.store, HTTPSyncConfig(c.cfg, c.log.With("component", "http-sync")))
	if err != nil {
		return config.Error{Err: err}
	}
	return nil
}

// HTTPSyncConfig is the HTTP sync's part of cfg: what the daemon and
// collector sync -once use.
func HTTPSyncConfig(cfg *config.Config, log *slog.Logger) httpsync.Config {
	return httpsync.Config{URL: cfg.SyncHTTPURL, Token: cfg.SyncHTTPToken, Tables: cfg.SyncHTTPTables,
		HostID: cfg.HostID, Interval: cfg.SyncInterval, Timeout: cfg.SyncHTTPTimeout, Log: log}
}

// afterFlush asks every sync to send what a flush has just stored.
func (c *collector) afterFlush() {
	if c.syncer != nil {
		c.syncer.AfterFlush()
	}
	if c.httpSyncer != nil {
		c.httpSyncer.AfterFlush()
	}
}

// newAlerts makes the alerts, which judge every period, and reads back
// what they fired before, so that a restart neither forgets nor repeats
// them. The spike baselines are learned by runAlerts: a busy week of them
// takes seconds, which would hold up the start.
func (c *collector) newAlerts(ctx context.Context) error {
	var notify alert.Notifier
	if c.cfg.WebhookURL != "" {
		var err error
		c.webhook, err = alert.NewWebhook(c.cfg.WebhookURL, alert.WebhookOptions{Token: c.cfg.WebhookToken, Log: c.log.With("component", "webhook")})
		if err != nil {
			return fmt.Errorf("ALERT_WEBHOOK_URL: %w", err)
		}
		notify = c.webhook
	}
	var err error
	c.alerts, err = alert.New(alert.Config{
		Store: c.store,
		Log:   c.log.With("component", "alerts"),
		Spike: alert.Spike{
			Off:         !c.cfg.SpikeAlerts,
			Sensitivity: c.cfg.SpikeSensitivity,
			MinRate:     c.cfg.SpikeMinRate,
			Days:        c.cfg.SpikeDays,
			Step:        c.cfg.FlushInterval,
		},
		Quota: alert.Quota{
			Up: c.cfg.QuotaUp, Down: c.cfg.QuotaDown, Total: c.cfg.QuotaTotal,
			Thresholds:   c.cfg.QuotaThresholds,
			Billing:      c.billing,
			OnProjection: c.cfg.QuotaOnProjection,
		},
		Divergence: alert.Divergence{
			Off:         !c.cfg.HostdDivergence || c.cfg.HostdPassword == "",
			Sensitivity: c.cfg.DivergenceSensitivity,
			MinBytes:    c.cfg.DivergenceMinBytes,
			Periods:     c.cfg.DivergencePeriods,
			Days:        c.cfg.DivergenceDays,
		},
		Notify: notify,
	})
	if err != nil {
		return err
	}
	if err := c.alerts.Load(ctx); err != nil {
		c.log.Warn("the alerts start without what the database holds of their history", "err", err)
	}
	return nil
}

// runAlerts learns the spike baselines while the rest of the daemon
// starts and runs, and delivers the alerts to the webhook, if there is
// one, meanwhile too.
func (c *collector) runAlerts(ctx context.Context) error {
	learned := make(chan struct{})
	go func() {
		defer close(learned)
		if err := c.alerts.Learn(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("the spike alerts judge from what they could read of their history", "err", err)
		}
	}()
	defer func() { <-learned }()
	if c.webhook == nil {
		<-ctx.Done()
		return nil
	}
	return c.webhook.Run(ctx)
}

// newMetrics makes the metrics, which add up every period as a consumer
// and read the rest of the daemon's state at scrape time.
func (c *collector) newMetrics(context.Context) error {
	c.metrics = metrics.New(metrics.Config{
		TopClients: c.cfg.MetricsTopClients,
		Flushes:    func() agg.Stats { return c.aggregator.Stats() },
		Datapath:   c.counters.Stats,
		Interfaces: func() bpfgo.InterfaceStats { return c.ifaces.Stats() },
		Billing:    c.billing,
		Billed:     c.billed,
		Alerts:     c.alertMetrics(),
		Syncs:      c.syncStats(),
		Hostd:      c.hostdFigures(),
		Folds:      c.store.RollupFolds,
		Version:    c.build.Version,
		Commit:     c.build.Commit,
		BPFObject:  bpf.ObjectSHA256(),
		Log:        c.log.With("component", "metrics"),
	})
	return nil
}

// hostdFigures is where the metrics read hostd's figures beside the
// wire's; nil when hostd is not read.
func (c *collector) hostdFigures() func(context.Context, billing.Period) (beside.Figures, bool, error) {
	if c.hostd == nil {
		return nil
	}
	return metrics.HostdOf(c.store)
}

// syncStats is where the metrics read the syncs; none without one.
func (c *collector) syncStats() []func() syncloop.Stats {
	var stats []func() syncloop.Stats
	if c.syncer != nil {
		stats = append(stats, c.syncer.Stats)
	}
	if c.httpSyncer != nil {
		stats = append(stats, c.httpSyncer.Stats)
	}
	return stats
}

// alertMetrics is where the metrics read the alerts.
func (c *collector) alertMetrics() metrics.Alerts {
	a := metrics.Alerts{Active: c.alerts.Active, Quotas: c.alerts.QuotaUse}
	if c.webhook != nil {
		a.Webhook = c.webhook.Stats
	}
	return a
}

// billed reads what the database holds of billing period p so far, per
// direction, and what its egress costs, through the same report code as
// collector report -period billing.
func (c *collector) billed(ctx context.Context, p billing.Period) (metrics.Billed, error) {
	res, err := report.Build(ctx, c.store, report.Request{Span: report.BillingSpan(p), By: report.ByClass, Now: time.Now(), Egress: c.egressAsk()})
	if err != nil {
		return metrics.Billed{}, err
	}
	b := metrics.Billed{Egress: res.Egress}
	for class := range res.Total.Traffic {
		b.Down += res.Total.Traffic[class][traffic.Down].Bytes
		b.Up += res.Total.Traffic[class][traffic.Up].Bytes
	}
	return b, nil
}

// egressAsk is what reports of a billing period are asked of its egress:
// EGRESS_COST_PER_TB and the rest, and hostd's price.
func (c *collector) egressAsk() *report.EgressAsk {
	return &report.EgressAsk{Pricing: c.cfg.Egress, Prices: c.prices}
}

// startHTTP listens on HTTP_LISTEN: a busy port fails the start here.
func (c *collector) startHTTP(ctx context.Context) error {
	var err error
	c.http, err = web.New(web.Config{
		Listen:        c.cfg.HTTPListen,
		AllowedHosts:  c.cfg.HTTPAllowedHosts,
		WebConfigFile: c.cfg.WebConfigFile,
		Log:           c.log.With("component", "http"),
		Metrics:       metrics.NewRegistry(c.metrics),
		Reports:       c.store,
		Live:          c.aggregator.Open,
		Names:         c.store.Names,
		Billing:       c.billing,
		Dashboard:     dashboard.Handler(),
		Egress:        c.egressAsk(),
		Alerts:        c.alerts.Active,
		Quotas:        c.alerts.QuotaUse,
	})
	if err != nil {
		return err
	}
	return c.http.Start(ctx)
}

func (c *collector) newAggregator(context.Context) error {
	c.aggregator = agg.NewAggregator(c.counters, agg.Config{
		Interval:   c.cfg.FlushInterval,
		Log:        c.log.With("component", "agg"),
		MaxPending: c.cfg.MaxPendingRows,
		// Clients that moved real data keep their place in the counter
		// map when a flood fills it; half of it stays for new ones.
		MinClientBytes: c.cfg.MinClientBytes,
		MaxClientRows:  c.cfg.MaxClientRows,
		Seeder:         c.counters,
		MaxSeeded:      int(c.cfg.MaxClients / 2),
		// The live views read the open period through the aggregator.
		Peeker: c.counters,
	}, c.consumers()...)
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
	return live.NewPrinter(c.aggregator, c.today, os.Stderr, c.cfg.LiveInterval, c.log.With("component", "live")).Run(ctx)
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

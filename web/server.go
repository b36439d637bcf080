// Package web is the daemon's one HTTP server, read-only: /metrics for
// Prometheus, a JSON API under /api/v1/ that answers the questions of
// collector report (and what the kernel counted since the last flush),
// and the dashboard. TLS and basic auth come from the Prometheus
// ecosystem's web configuration file, read by prometheus/exporter-toolkit,
// so that a host's existing scrape setup works unchanged.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/back2basic/collector/alert"
	"github.com/back2basic/collector/billing"
	"github.com/back2basic/collector/report"
	"github.com/back2basic/collector/traffic"
)

// Config is what the server serves, and where.
type Config struct {
	// Listen is the address to listen on, host:port (HTTP_LISTEN).
	Listen string
	// AllowedHosts are the names, besides the listen address and
	// loopback's, that a request's Host header may give
	// (HTTP_ALLOWED_HOSTS): those of a reverse proxy in front, say.
	AllowedHosts []string
	// WebConfigFile is the Prometheus web configuration file giving TLS
	// and basic auth (WEB_CONFIG_FILE); empty serves plain HTTP to
	// anyone who can connect.
	WebConfigFile string
	// Log hears about the server starting, stopping and failing; default
	// slog.Default().
	Log *slog.Logger

	// Metrics is served at /metrics; nil serves no /metrics.
	Metrics prometheus.Gatherer
	// Reports is the stored traffic the API reports on.
	Reports report.Source
	// Live returns the open period: what the kernel counted since the
	// last flush, and when that flush was (agg.Aggregator's Open); nil
	// serves no /api/v1/live.
	Live func() (traffic.OpenPeriod, error)
	// Names gives the reverse DNS names known of clients, shown beside
	// the live ones; nil shows them without.
	Names func(ctx context.Context, clients []traffic.Client) (map[traffic.Client]string, error)
	// Billing is the billing calendar (BILLING_DAY in the operator's
	// zone): /api/v1/billing reports its period holding now, and the
	// reports' billing periods start on its day unless asked otherwise.
	Billing billing.Cycle
	// Now reads the clock, in the location of the reports' calendar;
	// default time.Now.
	Now func() time.Time
	// Dashboard is served at / and below, beside the API; nil serves
	// none.
	Dashboard http.Handler
	// Egress is asked of every report of a billing period the API
	// answers: its egress cost, value and margin; nil asks none.
	Egress *report.EgressAsk
	// Alerts reads the alerts firing and Quotas each quota's use, for
	// /api/v1/alerts; nil Alerts serves none.
	Alerts func() []alert.Alert
	Quotas func() []alert.QuotaUse
}

// The server's bounds. A slow or idle client holds a connection for
// seconds, not forever; writing leaves time for a report read in up to
// requestTimeout to reach a slow client.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = time.Minute
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 16 << 10
	// shutdownTimeout is how long requests in flight may take to finish
	// when the daemon stops, before their connections are closed.
	shutdownTimeout = 5 * time.Second
)

// Server is the HTTP server: New builds it, Start listens, Run serves.
type Server struct {
	cfg      Config
	log      *slog.Logger
	handler  http.Handler
	srv      *http.Server
	listener net.Listener // set by Start

	// allowedHosts are the host names a request may give, as hostName
	// writes them.
	allowedHosts []string
	// The bounds of a request that reads the traffic (maxRows, maxHeavy,
	// requestTimeout), fields so that tests can lower them.
	maxRows        int
	heavySlots     chan struct{}
	requestTimeout time.Duration
}

// New returns the server cfg describes, not yet listening.
func New(cfg Config) (*Server, error) {
	if cfg.Reports == nil {
		return nil, errors.New("http server: no stored traffic to report on")
	}
	if cfg.Billing.IsZero() {
		return nil, errors.New("http server: no billing calendar (BILLING_DAY)")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, log: cfg.Log,
		maxRows: maxRows, heavySlots: make(chan struct{}, maxHeavy), requestTimeout: requestTimeout}
	for _, h := range slices.Concat(cfg.AllowedHosts, []string{cfg.Listen}) {
		if name := hostName(h); name != "" {
			s.allowedHosts = append(s.allowedHosts, name)
		}
	}
	s.handler = s.routes()
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// Failed TLS handshakes and broken connections, from scanners
		// on a public address mostly, are noise at any higher level.
		ErrorLog: slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Handler returns what the server answers requests with, without the TLS
// and basic auth of the web configuration file: for tests, and for
// serving it some other way.
func (s *Server) Handler() http.Handler { return s.handler }

// Start checks the web configuration file and listens, so that a bad file
// or a port in use stops the daemon's start with one line.
func (s *Server) Start(ctx context.Context) error {
	if s.cfg.Listen == "" {
		return errors.New("http server: no address to listen on (HTTP_LISTEN)")
	}
	if s.cfg.WebConfigFile != "" {
		if err := web.Validate(s.cfg.WebConfigFile); err != nil {
			return fmt.Errorf("http server: web configuration file %s (WEB_CONFIG_FILE): %w", s.cfg.WebConfigFile, err)
		}
	}
	l, err := new(net.ListenConfig).Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("http server: %w (HTTP_LISTEN; empty turns the server off)", err)
	}
	s.listener = l
	s.log.Info("http server listening", "address", l.Addr().String(), "web_config_file", s.cfg.WebConfigFile)
	if s.cfg.WebConfigFile == "" && !isLoopback(l.Addr()) {
		s.log.Warn("the http server is reachable beyond this machine with neither TLS nor authentication; set WEB_CONFIG_FILE, or listen on 127.0.0.1",
			"address", l.Addr().String())
	}
	return nil
}

// isLoopback reports whether addr is reachable from this machine only.
func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// Run serves on the address Start listens on until ctx is done, then
// stops taking connections and waits up to shutdownTimeout for requests in
// flight before closing theirs.
func (s *Server) Run(ctx context.Context) error {
	// Serve closes the listener, unless it fails before serving.
	defer s.listener.Close()
	served := make(chan error, 1)
	go func() {
		served <- web.Serve(s.listener, s.srv, &web.FlagConfig{WebConfigFile: &s.cfg.WebConfigFile}, s.log)
	}()
	select {
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(shutdownCtx)
	if err != nil {
		s.srv.Close()
		err = fmt.Errorf("http server: requests still running after %s: %w", shutdownTimeout, err)
	}
	if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("http server: %w", serveErr))
	}
	return err
}

package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/back2basic/collector/lab"
)

// demoQuery is what an operator would ask the database after the demo.
const demoQuery = `SELECT datetime(timestamp, 'unixepoch') AS minute, ip,
  consensus_down, consensus_up, siamux_down, siamux_up, quic_down, quic_up,
  consensus_down_packets + consensus_up_packets + siamux_down_packets +
  siamux_up_packets + quic_down_packets + quic_up_packets AS packets
FROM traffic ORDER BY timestamp, ip;`

// daemonHTTP is where the daemon's HTTP server listens in the lab's host
// namespace: its own loopback, which the demo serves on this machine.
var daemonHTTP = netip.MustParseAddrPort("127.0.0.1:9986")

// demo builds a throwaway lab of network namespaces, runs the real daemon
// on the lab's host interface, drives Sia and other traffic through it,
// shows the live lines, serves the daemon's dashboard on this machine, and
// shows the stored rows. The lab is removed at the end, also on Ctrl-C.
func demo(ctx context.Context, args []string) error {
	fl := flag.NewFlagSet("collector demo", flag.ContinueOnError)
	duration := fl.Duration("duration", 30*time.Second, "how long traffic runs")
	keep := fl.Bool("keep", false, "keep the lab, its traffic and the dashboard running until Ctrl-C")
	listen := fl.String("listen", "127.0.0.1:9986", "address on this machine the dashboard is served on while the demo runs")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("the demo builds network namespaces and attaches BPF programs: run it as root (sudo make demo)")
	}
	sqlite3, err := exec.LookPath("sqlite3")
	if err != nil {
		return errors.New("the demo shows the stored rows with sqlite3: apt-get install sqlite3 (make deps does)")
	}

	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	l, err := lab.New(lab.Options{})
	if err != nil {
		return err
	}
	defer l.Close()
	dir, err := os.MkdirTemp("", "collector-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	db := filepath.Join(dir, "collector.db")

	step("lab: namespace %s with interface %s (%v), clients %v in namespace %s",
		l.HostNS, l.HostIf, l.HostAddrs, l.ClientAddrs, l.ClientNS)
	step("starting collector on %s: flush and live lines every 10s, database %s", l.HostIf, db)
	d, err := l.StartDaemon(self, os.Stderr, "-sqlite-path", db, "-flush-interval", "10s", "-live-interval", "10s",
		"-reverse-dns", "0", "-http-listen", daemonHTTP.String())
	if err != nil {
		return err
	}
	dashboard, err := serveFromLab(l, *listen, daemonHTTP)
	if err != nil {
		return errors.Join(err, d.Stop())
	}
	defer dashboard.Close()
	step("dashboard: http://%s/ (metrics: /metrics, API: /api/v1/)", *listen)

	trafficCtx, cancel := context.WithTimeout(ctx, *duration)
	if *keep {
		step("traffic until Ctrl-C: TCP 9981 both ways, TCP 9984, UDP 9984, and non-Sia TCP 8080 / UDP 5353 that must not be counted")
		trafficCtx, cancel = context.WithCancel(ctx)
	} else {
		step("traffic for %v: TCP 9981 both ways, TCP 9984, UDP 9984, and non-Sia TCP 8080 / UDP 5353 that must not be counted", *duration)
	}
	sent, trafficErr := l.Traffic(trafficCtx, lab.Spec{Rounds: lab.Forever, Interval: time.Second})
	cancel()
	step("%d rounds of traffic sent; stopping collector (SIGTERM): it detaches and stores the last partial minute", sent.Rounds)
	if err := errors.Join(trafficErr, d.Stop(), dashboard.Close()); err != nil {
		return err
	}

	step("stored rows (sqlite3 %s):", db)
	show := exec.Command(sqlite3, "-header", "-column", db, demoQuery)
	show.Stdout, show.Stderr = os.Stdout, os.Stderr
	if err := show.Run(); err != nil {
		return fmt.Errorf("query %s: %w", db, err)
	}
	step("the same as a report (collector report -sqlite-path %s):", db)
	report := exec.Command(self, "report", "-config", os.DevNull, "-sqlite-path", db)
	report.Stdout, report.Stderr = os.Stdout, os.Stderr
	if err := report.Run(); err != nil {
		return fmt.Errorf("report on %s: %w", db, err)
	}
	step("done; removing the lab")
	return nil
}

// labProxy serves on this machine what a server in the lab's host
// namespace serves, whose loopback this machine cannot reach otherwise.
type labProxy struct {
	srv  *http.Server
	done chan struct{}
}

// serveFromLab listens on listen and hands every request to target in
// l's host namespace.
func serveFromLab(l *lab.Lab, listen string, target netip.AddrPort) (*labProxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("serve the dashboard (-listen): %w", err)
	}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target.String()})
	proxy.Transport = l.HTTPTransport(l.HostNS)
	p := &labProxy{srv: &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.srv.Serve(ln)
	}()
	return p, nil
}

// Close stops serving and waits until the server has ended.
func (p *labProxy) Close() error {
	err := p.srv.Close()
	<-p.done
	return err
}

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

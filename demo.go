package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
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

// demo builds a throwaway lab of network namespaces, runs the real daemon
// on the lab's host interface, drives Sia and other traffic through it,
// and shows the live lines and the stored rows. The lab is removed at the
// end, also on Ctrl-C.
func demo(ctx context.Context, args []string) error {
	fl := flag.NewFlagSet("collector demo", flag.ContinueOnError)
	duration := fl.Duration("duration", 30*time.Second, "how long traffic runs")
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
	d, err := l.StartDaemon(self, os.Stderr, "-sqlite-path", db, "-flush-interval", "10s", "-live-interval", "10s", "-reverse-dns", "0")
	if err != nil {
		return err
	}

	step("traffic for %v: TCP 9981 both ways, TCP 9984, UDP 9984, and non-Sia TCP 8080 / UDP 5353 that must not be counted", *duration)
	trafficCtx, cancel := context.WithTimeout(ctx, *duration)
	sent, trafficErr := l.Traffic(trafficCtx, lab.Spec{Rounds: lab.Forever, Interval: time.Second})
	cancel()
	step("%d rounds of traffic sent; stopping collector (SIGTERM): it detaches and stores the last partial minute", sent.Rounds)
	if err := errors.Join(trafficErr, d.Stop()); err != nil {
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

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

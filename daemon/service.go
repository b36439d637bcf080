// Package daemon runs the collector: the services that make it up, started
// in order and stopped in the reverse order, so that shutdown is explicit
// (detach, last drain, every consumer handed what was counted, files
// closed), and every goroutine is joined before the process exits.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/back2basic/collector/sdnotify"
)

// Service is one part of the running daemon. Any of its functions may be
// nil.
type Service struct {
	// Name names it in the journal and in errors.
	Name string
	// Start readies it; the next service starts once it returns. ctx is
	// done when the daemon is told to stop.
	Start func(ctx context.Context) error
	// Run does its work from when Start returned until its ctx is done,
	// which is when the service is stopped, not when the daemon is told
	// to: a service runs until those after it have stopped. Run returning
	// any earlier stops the daemon.
	Run func(ctx context.Context) error
	// Stop releases what Start took, once Run has returned.
	Stop func() error
}

// running is a started service.
type running struct {
	Service
	cancel context.CancelFunc
	done   chan error // Run's result, when it has a Run
}

// Run starts services in order, tells systemd the daemon is ready, and
// waits until ctx is done or a service's Run returns; then it tells
// systemd it is stopping and stops the started services in reverse order.
// A service that fails to start stops the start there. It returns every
// error of the start, the runs and the stops.
func Run(ctx context.Context, log *slog.Logger, services ...Service) error {
	var (
		started []*running
		errs    []error
	)
	ended := make(chan string, len(services))
	for _, s := range services {
		r, err := start(ctx, s, ended)
		if err != nil {
			errs = append(errs, err)
			break
		}
		started = append(started, r)
	}
	if len(errs) == 0 {
		if err := sdnotify.Notify(sdnotify.Ready); err != nil {
			log.Warn("systemd will time out the start", "err", err)
		}
		select {
		case <-ctx.Done():
		case name := <-ended:
			log.Error("a service ended on its own; stopping", "service", name)
		}
	}
	if err := sdnotify.Notify(sdnotify.Stopping); err != nil {
		log.Warn("tell systemd we are stopping", "err", err)
	}
	for i := len(started) - 1; i >= 0; i-- {
		if err := started[i].stop(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// start starts s and its Run, which reports its name on ended should it
// return before it is stopped.
func start(ctx context.Context, s Service, ended chan<- string) (*running, error) {
	if s.Start != nil {
		if err := s.Start(ctx); err != nil {
			return nil, err
		}
	}
	r := &running{Service: s, cancel: func() {}}
	if s.Run != nil {
		var runCtx context.Context
		runCtx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
		r.done = make(chan error, 1)
		go func() {
			err := s.Run(runCtx)
			if runCtx.Err() == nil {
				ended <- s.Name
			}
			r.done <- err
		}()
	}
	return r, nil
}

// stop ends r's Run, waits for it, then calls Stop.
func (r *running) stop() error {
	r.cancel()
	var errs []error
	if r.done != nil {
		if err := <-r.done; err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.Name, err))
		}
	}
	if r.Stop != nil {
		if err := r.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", r.Name, err))
		}
	}
	return errors.Join(errs...)
}

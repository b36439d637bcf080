// Package peers samples hostd's syncer peers every minute into the store,
// so that each client can be marked per period as a syncer peer, inbound
// or outbound, or not (store.Roles).
//
// hostd lists a peer by the address the syncer has for it: the address it
// connected from (inbound) or the address it was dialled at (outbound),
// which can be a host name. A host name cannot be matched to the address
// the datapath counts, so such peers are counted and logged, not stored.
package peers

import (
	"context"
	"log/slog"
	"time"

	"github.com/back2basic/collector/hostd"
	"github.com/back2basic/collector/internal/outage"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// Defaults of Config.
const (
	DefaultInterval = time.Minute
	DefaultTimeout  = 10 * time.Second
)

// Lister lists hostd's syncer peers now; *hostd.Client is one.
type Lister interface {
	Peers(ctx context.Context) ([]hostd.Peer, error)
}

// Saver stores a sample of peers; *store.Store is one.
type Saver interface {
	SavePeers(ctx context.Context, at time.Time, peers map[traffic.Client]store.Peering) error
}

// Config is what a Sampler reads from and writes to.
type Config struct {
	Hostd Lister
	Store Saver
	// Interval is the time between samples, which are taken in the
	// middle of each interval of the clock (at hh:mm:30 by default), far
	// from the minutes' ends, so each sample falls in the minute it was
	// meant for; default DefaultInterval.
	Interval time.Duration
	// Timeout bounds one sample, asking and storing; default
	// DefaultTimeout.
	Timeout time.Duration
	// Log hears about hostd and the store failing and recovering, once
	// each way per outage; default slog.Default().
	Log *slog.Logger
}

// Sampler samples the peers; Run does the work.
type Sampler struct {
	cfg Config
	// hostd and saving are runs of failures, each logged as it starts and
	// as it ends.
	hostd, saving outage.Outage
	// namesSeen is whether a sample listed a peer by host name yet: the
	// first is logged at info, the rest at debug.
	namesSeen bool
}

// New returns a sampler of cfg.Hostd into cfg.Store.
func New(cfg Config) *Sampler {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Sampler{
		cfg: cfg,
		hostd: outage.Outage{
			Start: "hostd API unreachable; syncer peers are not sampled until it answers",
			End:   "hostd API answers again; sampling syncer peers",
		},
		saving: outage.Outage{
			Start: "cannot store hostd's syncer peers; those samples are lost, the next is tried",
			End:   "storing hostd's syncer peers again",
		},
	}
}

// Run samples in the middle of every Interval of the clock until ctx is
// done. A slow or failing hostd costs a sample at most Timeout, in this
// goroutine only.
func (s *Sampler) Run(ctx context.Context) error {
	for {
		wait := time.NewTimer(time.Until(nextSample(time.Now(), s.cfg.Interval)))
		select {
		case <-ctx.Done():
			wait.Stop()
			return nil
		case <-wait.C:
		}
		s.sample(ctx)
	}
}

// nextSample returns the first middle of an interval of the clock after
// now.
func nextSample(now time.Time, interval time.Duration) time.Time {
	next := now.Truncate(interval).Add(interval / 2)
	if !next.After(now) {
		next = next.Add(interval)
	}
	return next
}

// sample asks hostd for its peers and stores those with an address, stamped
// with the time it asked.
// An outage is judged by ctx, not by the sample's own timeout: a stall
// past it is a failure of hostd's, a ctx done is none.
func (s *Sampler) sample(ctx context.Context) {
	sampleCtx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	at := time.Now()
	listed, err := s.cfg.Hostd.Peers(sampleCtx)
	s.hostd.Update(ctx, s.cfg.Log, time.Now(), err, "api", s.cfg.Hostd)
	if err != nil {
		return
	}
	peers := make(map[traffic.Client]store.Peering, len(listed))
	var named []string
	for _, p := range listed {
		addr, ok := p.Addr()
		if !ok {
			named = append(named, p.Address)
			continue
		}
		c := traffic.ClientOf(addr)
		peering := peers[c]
		if p.Inbound {
			peering.Inbound = true
		} else {
			peering.Outbound = true
		}
		peers[c] = peering
	}
	if len(named) > 0 {
		level := slog.LevelDebug
		if !s.namesSeen {
			s.namesSeen, level = true, slog.LevelInfo
		}
		s.cfg.Log.Log(ctx, level, "hostd lists syncer peers by host name, which cannot be matched to a client address; they are not marked as peers",
			"named", len(named), "listed", len(listed), "names", named)
	}
	err = s.cfg.Store.SavePeers(sampleCtx, at, peers)
	s.saving.Update(ctx, s.cfg.Log, time.Now(), err)
}

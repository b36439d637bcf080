package peers

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/back2basic/collector/hostd"
	"github.com/back2basic/collector/internal/testkit/hostdtest"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

const password = "peer-sampler-password"

// samples records what a Sampler stores.
type samples struct {
	mu   sync.Mutex
	got  []map[traffic.Client]store.Peering
	fail error
}

func (s *samples) SavePeers(_ context.Context, _ time.Time, peers map[traffic.Client]store.Peering) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.got = append(s.got, peers)
	return nil
}

func (s *samples) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func (s *samples) last() map[traffic.Client]store.Peering {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) == 0 {
		return nil
	}
	return s.got[len(s.got)-1]
}

// newSampler returns a sampler of srv with pass into a recorder, logging
// into the returned buffer.
func newSampler(t *testing.T, srv *hostdtest.Server, pass string, timeout time.Duration) (*Sampler, *samples, *bytes.Buffer) {
	t.Helper()
	c, err := hostd.New(srv.APIURL(), pass)
	if err != nil {
		t.Fatal(err)
	}
	rec := &samples{}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return New(Config{Hostd: c, Store: rec, Timeout: timeout, Log: log}), rec, &logs
}

func client(s string) traffic.Client { return traffic.ClientOf(netip.MustParseAddr(s)) }

func TestSampleMarksEachWay(t *testing.T) {
	srv := hostdtest.Start(t, password, hostdtest.V2_10_2)
	srv.SetPeers(
		hostdtest.Peer{Address: "203.0.113.7:9981", Inbound: true},
		hostdtest.Peer{Address: "[2001:db8::1]:9981"},
		// The same address both ways: it dialled the host and was
		// dialled.
		hostdtest.Peer{Address: "198.51.100.3:52113", Inbound: true},
		hostdtest.Peer{Address: "198.51.100.3:9981"},
		hostdtest.Peer{Address: "[::ffff:192.0.2.9]:9981", Inbound: true},
		hostdtest.Peer{Address: "node.example:9981"},
		hostdtest.Peer{Address: "other.example:9981"},
	)
	s, rec, logs := newSampler(t, srv, password, time.Second)
	s.sample(t.Context())
	want := map[traffic.Client]store.Peering{
		client("203.0.113.7"):  {Inbound: true},
		client("2001:db8::1"):  {Outbound: true},
		client("198.51.100.3"): {Inbound: true, Outbound: true},
		client("192.0.2.9"):    {Inbound: true},
	}
	if got := rec.last(); !maps.Equal(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
	s.sample(t.Context())
	// The host names are said once at info, then at debug.
	if n := strings.Count(logs.String(), "level=INFO msg=\"hostd lists syncer peers by host name"); n != 1 {
		t.Errorf("%d info lines about named peers, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "named=2") || !strings.Contains(logs.String(), "node.example:9981") {
		t.Errorf("the log does not count or name the named peers:\n%s", logs)
	}
}

// hostd down, refusing the password, stalling past the timeout: one line
// as each outage starts and one as it ends, and samples again after.
func TestOutagesLoggedOnceEachWay(t *testing.T) {
	srv := hostdtest.Start(t, password, hostdtest.V2_10_2)
	srv.SetPeers(hostdtest.Peer{Address: "203.0.113.7:9981", Inbound: true})
	ok := map[traffic.Client]store.Peering{client("203.0.113.7"): {Inbound: true}}
	for _, tt := range []struct {
		name    string
		pass    string
		breakIt func()
		mend    func()
		cause   string
	}{
		{"500", password, func() { srv.Fail(http.StatusInternalServerError) }, func() { srv.Fail(0) }, "database is locked"},
		{"stall", password, func() { srv.Stall(2 * time.Second) }, func() { srv.Stall(0) }, "deadline"},
		{"401", "wrong", func() {}, func() {}, "HOSTD_API_PASSWORD"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, rec, logs := newSampler(t, srv, tt.pass, 300*time.Millisecond)
			tt.breakIt()
			for range 3 {
				s.sample(t.Context())
			}
			tt.mend()
			if tt.pass != password {
				// The operator fixes the password.
				c, _ := hostd.New(srv.APIURL(), password)
				s.cfg.Hostd = c
			}
			for range 2 {
				s.sample(t.Context())
			}
			text := logs.String()
			if n := strings.Count(text, "hostd API unreachable"); n != 1 {
				t.Errorf("%d lines as the outage starts, want 1:\n%s", n, text)
			}
			if n := strings.Count(text, "hostd API answers again"); n != 1 {
				t.Errorf("%d lines as it ends, want 1:\n%s", n, text)
			}
			if !strings.Contains(text, tt.cause) || strings.Contains(text, password) {
				t.Errorf("the log does not name the cause %q, or holds the password:\n%s", tt.cause, text)
			}
			if len(rec.got) != 2 || !maps.Equal(rec.last(), ok) {
				t.Errorf("stored %v after the outage, want 2 samples of %v", rec.got, ok)
			}
		})
	}
}

func TestStoreFailureLoggedOnceEachWay(t *testing.T) {
	srv := hostdtest.Start(t, password, hostdtest.V2_10_2)
	srv.SetPeers(hostdtest.Peer{Address: "203.0.113.7:9981", Inbound: true})
	s, rec, logs := newSampler(t, srv, password, time.Second)
	rec.fail = errors.New("database is locked")
	s.sample(t.Context())
	s.sample(t.Context())
	rec.fail = nil
	s.sample(t.Context())
	text := logs.String()
	if strings.Count(text, "cannot store hostd's syncer peers") != 1 || strings.Count(text, "storing hostd's syncer peers again") != 1 {
		t.Errorf("want one line each way:\n%s", text)
	}
}

// Samples are taken in the middle of each interval of the clock.
func TestNextSample(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.TimeOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tt := range []struct{ now, want string }{
		{"10:00:00", "10:00:30"},
		{"10:00:29.999", "10:00:30"},
		{"10:00:30", "10:01:30"},
		{"10:00:59", "10:01:30"},
	} {
		if got := nextSample(at(tt.now), time.Minute); !got.Equal(at(tt.want)) {
			t.Errorf("after %s: %s, want %s", tt.now, got.Format(time.TimeOnly), tt.want)
		}
	}
}

// Run samples every interval, and returns when told to stop, even with
// hostd stalled.
func TestRunSamplesEveryInterval(t *testing.T) {
	srv := hostdtest.Start(t, password, hostdtest.V2_10_2)
	srv.SetPeers(hostdtest.Peer{Address: "203.0.113.7:9981", Inbound: true})
	c, err := hostd.New(srv.APIURL(), password)
	if err != nil {
		t.Fatal(err)
	}
	rec := &samples{}
	s := New(Config{Hostd: c, Store: rec, Interval: 50 * time.Millisecond, Timeout: time.Minute, Log: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for rec.count() < 3 {
		time.Sleep(10 * time.Millisecond)
	}
	srv.Stall(time.Hour)
	time.Sleep(100 * time.Millisecond) // a sample is now waiting on hostd
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// journal records what the services of a test do, in order.
type journal struct {
	mu    sync.Mutex
	steps []string
}

func (j *journal) add(step string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.steps = append(j.steps, step)
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.steps)
}

// recorded returns a service named name that records its start, the
// start and end of its run, and its stop. startErr fails its start.
func recorded(j *journal, name string, startErr error) Service {
	return Service{
		Name: name,
		Start: func(context.Context) error {
			j.add("start " + name)
			return startErr
		},
		Run: func(ctx context.Context) error {
			<-ctx.Done()
			j.add("run ended " + name)
			return nil
		},
		Stop: func() error {
			j.add("stop " + name)
			return nil
		},
	}
}

var quiet = slog.New(slog.DiscardHandler)

func TestRunStopsInReverseOrder(t *testing.T) {
	var j journal
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- Run(ctx, quiet, recorded(&j, "a", nil), recorded(&j, "b", nil), recorded(&j, "c", nil))
	}()
	waitFor(t, func() bool { return len(j.list()) == 3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	want := []string{"start a", "start b", "start c",
		"run ended c", "stop c", "run ended b", "stop b", "run ended a", "stop a"}
	if got := j.list(); !slices.Equal(got, want) {
		t.Errorf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRunKeepsEarlierServicesRunningWhileLaterOnesStop(t *testing.T) {
	// The aggregator's last drain runs after the interfaces, started
	// after it, are detached: its run must not see the daemon's ctx end.
	var j journal
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	early := Service{Name: "early", Run: func(runCtx context.Context) error {
		<-runCtx.Done()
		j.add("early saw its stop")
		return nil
	}}
	late := Service{Name: "late", Stop: func() error {
		j.add("late stopped")
		return nil
	}}
	if err := Run(ctx, quiet, early, late); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got, want := j.list(), []string{"late stopped", "early saw its stop"}; !slices.Equal(got, want) {
		t.Errorf("steps %q, want %q", got, want)
	}
}

func TestRunStopsWhatStartedWhenAStartFails(t *testing.T) {
	var j journal
	refused := errors.New("verifier refused")
	err := Run(context.Background(), quiet, recorded(&j, "a", nil), recorded(&j, "b", refused), recorded(&j, "c", nil))
	if !errors.Is(err, refused) {
		t.Fatalf("Run = %v, want %v", err, refused)
	}
	want := []string{"start a", "start b", "run ended a", "stop a"}
	if got := j.list(); !slices.Equal(got, want) {
		t.Errorf("steps %q, want %q", got, want)
	}
}

func TestRunStopsWhenAServiceEndsOnItsOwn(t *testing.T) {
	var j journal
	broken := errors.New("printer broke")
	ends := Service{Name: "ends", Run: func(context.Context) error { return broken }}
	done := make(chan error)
	go func() { done <- Run(context.Background(), quiet, recorded(&j, "a", nil), ends) }()
	select {
	case err := <-done:
		if !errors.Is(err, broken) || !strings.Contains(err.Error(), "ends:") {
			t.Errorf("Run = %v, want %v naming the service", err, broken)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop after a service ended")
	}
	if got, want := j.list(), []string{"start a", "run ended a", "stop a"}; !slices.Equal(got, want) {
		t.Errorf("steps %q, want %q", got, want)
	}
}

func TestRunReturnsEveryStopError(t *testing.T) {
	first, second := errors.New("close database"), errors.New("detach")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Run(ctx, quiet,
		Service{Name: "database", Stop: func() error { return first }},
		Service{Name: "interfaces", Stop: func() error { return second }})
	if !errors.Is(err, first) || !errors.Is(err, second) {
		t.Errorf("Run = %v, want both stop errors", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRunTellsSystemdReadyOnlyOnceStarted(t *testing.T) {
	path := t.TempDir() + "/notify"
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	var j journal
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- Run(ctx, quiet, recorded(&j, "a", nil), recorded(&j, "b", nil)) }()

	msg := make([]byte, 64)
	n, err := conn.Read(msg)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(msg[:n]); got != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	if got := j.list(); len(got) != 2 {
		t.Errorf("READY=1 came after %q, want after both starts", got)
	}
	cancel()
	n, err = conn.Read(msg)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(msg[:n]); got != "STOPPING=1" {
		t.Errorf("second notification %q, want STOPPING=1", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

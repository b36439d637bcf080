package alert

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/syncbuf"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// pausedStore is a real store whose ClassMinutes stops at the first minute
// from after on until resume is closed, having closed paused: a Learn
// caught half way through the history.
type pausedStore struct {
	*store.Store
	after          time.Time
	paused, resume chan struct{}
	once           sync.Once
}

func (p *pausedStore) ClassMinutes(ctx context.Context, class traffic.Class, since time.Time, fn func(store.ClassMinute) error) error {
	return p.Store.ClassMinutes(ctx, class, since, func(m store.ClassMinute) error {
		if !m.Minute.Before(p.after) {
			p.once.Do(func() {
				close(p.paused)
				<-p.resume
			})
		}
		return fn(m)
	})
}

// Until Learn has read the whole history, nothing is judged: the spiker's
// daily hour at 1 MB/s, usual over the whole week but not over its first
// three days, fires nothing from the half of the history read. The
// periods consumed meanwhile are judged once it has, against the whole
// history: a real spike among them fires then, from when it began, and
// the journal says when judging starts.
func TestLearnJudgesNothingHalfLearned(t *testing.T) {
	st := openHistory(t)
	// The spiker's hour at 10:00 on the last four days of the week.
	var daily []traffic.Row
	for day := day0.AddDate(0, 0, 3); day.Before(live); day = day.AddDate(0, 0, 1) {
		for m := day.Add(10 * time.Hour); m.Before(day.Add(11 * time.Hour)); m = m.Add(time.Minute) {
			daily = append(daily, traffic.Row{Start: m, Client: spiker, Traffic: consensus(1_000_000)})
		}
	}
	if err := st.Write(t.Context(), daily); err != nil {
		t.Fatal(err)
	}

	start := live.Add(10 * time.Hour)
	paused := &pausedStore{Store: st, after: day0.AddDate(0, 0, 3), paused: make(chan struct{}), resume: make(chan struct{})}
	var journal syncbuf.Buffer
	rec := &recorder{}
	d, err := New(Config{Store: paused, Log: slog.New(slog.NewTextHandler(&journal, nil)), Notify: rec, Now: func() time.Time { return start }})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	learned := make(chan error, 1)
	go func() { learned <- d.Learn(context.Background()) }()
	t.Cleanup(func() {
		select {
		case <-paused.resume:
		default:
			close(paused.resume)
		}
	})
	<-paused.paused

	// The spiker's usual hour, and from 10:20 a real spike of another peer.
	w := world{bursts: []burst{
		{client: spiker, from: start, to: start.Add(time.Hour), rate: 1_000_000},
		{client: peers[0], from: start.Add(20 * time.Minute), to: start.Add(30 * time.Minute), rate: 20_000_000},
	}}
	run(t, st, d, w, start, start.Add(30*time.Minute))
	if got := rec.list(); len(got) > 0 {
		t.Fatalf("alerts while learning: %+v", events(got))
	}
	if strings.Contains(journal.String(), "judging spikes") {
		t.Fatalf("the journal says spikes are judged before the history is read:\n%s", journal.String())
	}

	close(paused.resume)
	if err := <-learned; err != nil {
		t.Fatal(err)
	}
	got := rec.list()
	for _, a := range got {
		if a.Status != Firing || !a.StartedAt.Equal(start.Add(20*time.Minute)) || a.Subject != HostSubject && a.Subject != peers[0].String() {
			t.Errorf("alert %+v, want only the host's and %s's spike firing from %v", events([]Alert{a}), peers[0], start.Add(20*time.Minute))
		}
	}
	if len(got) != 2 {
		t.Errorf("alerts once learned: %+v, want the host's and %s's spike", events(got), peers[0])
	}
	if !strings.Contains(journal.String(), "judging spikes from now on") {
		t.Errorf("the journal does not say when judging starts:\n%s", journal.String())
	}
}

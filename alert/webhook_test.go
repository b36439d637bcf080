package alert

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/syncbuf"
)

// The secrets of the tests' webhook URL and token, which must never show.
var secrets = []string{"SECRETPASS", "SECRETPATH", "SECRETQUERY", "SECRETTOKEN"}

func TestRedact(t *testing.T) {
	tests := map[string]string{
		"https://user:SECRETPASS@hooks.example.com:8443/services/SECRETPATH?token=SECRETQUERY#x": "https://hooks.example.com:8443",
		"http://127.0.0.1:9000/hook":    "http://127.0.0.1:9000",
		"https://[2001:db8::1]/SECRET":  "https://[2001:db8::1]",
		"https://example.com?SECRET":    "https://example.com",
		"::not a URL SECRET":            "(webhook URL)",
		"/relative/SECRET?token=SECRET": "(webhook URL)",
	}
	for in, want := range tests {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
	err := redactError(&url.Error{Op: "Post", URL: "https://u:SECRETPASS@example.com/SECRETPATH", Err: context.DeadlineExceeded})
	if got := err.Error(); strings.Contains(got, "SECRET") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("redactError = %q, want no secret and the cause kept", got)
	}
}

func TestNewWebhookRefuses(t *testing.T) {
	for _, u := range []string{"ftp://example.com/SECRETPATH", "example.com/SECRETPATH", "https:///SECRETPATH", "http://%zzSECRETPATH"} {
		_, err := NewWebhook(u, WebhookOptions{})
		if err == nil || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("NewWebhook(%q) = %v, want an error that does not repeat the URL", u, err)
		}
	}
}

// receiver is a webhook endpoint that fails, hangs or takes alerts, as
// told.
type receiver struct {
	t    *testing.T
	mode atomic.Int32 // one of the modes below

	mu       sync.Mutex
	attempts map[int32]int
	got      map[string]int // id + " " + status, counted
	order    []string
}

const (
	failing  = iota // answers 500
	hanging         // answers nothing until the caller gives up
	taking          // takes the alert
	refusing        // answers 400, then takes the next ones
)

func newReceiver(t *testing.T) (*receiver, string) {
	r := &receiver{t: t, attempts: map[int32]int{}, got: map[string]int{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("collector", "SECRETPASS")
	u.Path = "/hooks/SECRETPATH"
	u.RawQuery = "key=SECRETQUERY"
	return r, u.String()
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	mode := r.mode.Load()
	r.mu.Lock()
	r.attempts[mode]++
	r.mu.Unlock()
	switch mode {
	case failing:
		http.Error(w, "down for maintenance", http.StatusInternalServerError)
		return
	case hanging:
		// The server learns that the caller gave up once the body is
		// read.
		_, _ = io.Copy(io.Discard, req.Body)
		select {
		case <-req.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return
	case refusing:
		r.mode.Store(taking)
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if got := req.Header.Get("Authorization"); got != "Bearer SECRETTOKEN" || req.Header.Get("Content-Type") != "application/json" {
		r.t.Errorf("headers %v, want the token and JSON", req.Header)
	}
	var b struct {
		ID      string `json:"id"`
		Status  Status `json:"status"`
		Host    string `json:"host"`
		Summary string `json:"summary"`
	}
	if err := json.NewDecoder(req.Body).Decode(&b); err != nil || b.ID == "" || b.Host != "test-host" || b.Summary == "" {
		r.t.Errorf("body %+v, %v: want an id, the host and a summary", b, err)
	}
	r.mu.Lock()
	key := b.ID + " " + string(b.Status)
	r.got[key]++
	r.order = append(r.order, key)
	r.mu.Unlock()
}

// tried returns how many requests came in mode.
func (r *receiver) tried(mode int32) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts[mode]
}

// delivered returns each alert taken, by id and status, with how many
// times, and the order they came in.
func (r *receiver) delivered() (map[string]int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := make(map[string]int, len(r.got))
	for k, v := range r.got {
		got[k] = v
	}
	return got, append([]string(nil), r.order...)
}

// webhook starts a Webhook posting to u, run until the test ends, logging
// to log.
func webhook(t *testing.T, u string, log *slog.Logger, opts WebhookOptions) *Webhook {
	t.Helper()
	opts.Host, opts.Token, opts.Log = "test-host", "SECRETTOKEN", log
	if opts.Timeout == 0 {
		opts.Timeout = 300 * time.Millisecond
	}
	opts.Backoff, opts.MaxWait = 5*time.Millisecond, 50*time.Millisecond
	w, err := NewWebhook(u, opts)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// start runs w until the test ends.
func start(t *testing.T, w *Webhook) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

// waitFor waits up to 20 s for cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A receiver that fails, then hangs, gets every alert once it recovers,
// exactly once each, while the flushes never wait for it.
func TestWebhookDeliversEveryAlertAfterOutage(t *testing.T) {
	r, u := newReceiver(t)
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	const timeout = time.Second
	w := webhook(t, u, log, WebhookOptions{Timeout: timeout})
	start(t, w)

	st := openHistory(t)
	rec := &recorder{}
	d := load(t, st, Config{
		Log:    log,
		Notify: tee{rec, w},
		Quota:  Quota{Up: 2e9, Billing: billedOn(10)},
	}, live)
	counted := world{bursts: []burst{spike}, upload: 10_000_000}

	longest := run(t, st, d, counted, live, spikeStart.Add(10*time.Minute))
	waitFor(t, "failed attempts", func() bool { return r.tried(failing) >= 3 })
	r.mode.Store(hanging)
	longest = max(longest, run(t, st, d, counted, spikeStart.Add(10*time.Minute), live.Add(14*time.Hour)))
	waitFor(t, "attempts timing out", func() bool { return r.tried(hanging) >= 2 })
	if longest >= timeout {
		t.Errorf("a flush took %v while the webhook failed: it waited for it", longest)
	}
	if got := w.Stats(); got.Sent != 0 || got.Queued != 6 {
		t.Errorf("stats during the outage %+v, want 6 alerts queued", got)
	}

	r.mode.Store(taking)
	alerts := rec.list()
	waitFor(t, "every alert", func() bool { got, _ := r.delivered(); return len(got) == len(alerts) })
	got, order := r.delivered()
	for i, a := range alerts {
		key := a.ID + " " + string(a.Status)
		if got[key] != 1 || order[i] != key {
			t.Errorf("alert %s delivered %d times, at %d in %q; want once, in the order raised", key, got[key], i, order)
		}
	}
	if n := len(alerts); n != 6 {
		t.Errorf("%d alerts raised, want a spike of the host and of a client, fired and resolved, and two quota thresholds: %+v", n, events(alerts))
	}
	if s := w.Stats(); s.Sent != 6 || s.Queued != 0 || s.Failures < 5 || s.Dropped != 0 {
		t.Errorf("stats %+v, want 6 sent after 5 failures or more", s)
	}
	checkNoSecrets(t, logs.String())
	if !strings.Contains(logs.String(), "cannot deliver alerts to the webhook") {
		t.Errorf("the outage was not logged:\n%s", logs.String())
	}
}

// checkNoSecrets fails if text holds a secret of the webhook's URL or
// token.
func checkNoSecrets(t *testing.T, text string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s logged:\n%s", s, text)
		}
	}
}

// testAlert is an alert as the webhook tests send it.
func testAlert(id string) Alert {
	return Alert{ID: id, Status: Firing, Kind: QuotaThreshold, Subject: "up", StartedAt: live,
		Quota: &QuotaDetails{Threshold: 0.8, Quota: 100, Used: 80, Share: 0.8, PeriodStart: day0, PeriodEnd: live}}
}

// A full queue drops its oldest alert, logged; a refused alert is dropped,
// not retried.
func TestWebhookDrops(t *testing.T) {
	r, u := newReceiver(t)
	var logs syncbuf.Buffer
	w := webhook(t, u, slog.New(slog.NewTextHandler(&logs, nil)), WebhookOptions{Queue: 3})
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		w.Notify(testAlert(id))
	}
	if s := w.Stats(); s.Queued != 3 || s.Dropped != 2 {
		t.Errorf("stats %+v, want 3 queued and 2 dropped", s)
	}
	r.mode.Store(refusing)
	start(t, w)
	waitFor(t, "the queue to empty", func() bool { return w.Stats().Queued == 0 })
	if _, order := r.delivered(); strings.Join(order, ",") != "d firing,e firing" {
		t.Errorf("delivered %q, want d and e: a and b pushed out, c refused", order)
	}
	if r.tried(refusing) != 1 {
		t.Errorf("%d attempts refused, want one: a refusal is not retried", r.tried(refusing))
	}
	text := logs.String()
	if !strings.Contains(text, "webhook queue full") || !strings.Contains(text, "refuses an alert") {
		t.Errorf("drops not logged:\n%s", text)
	}
	checkNoSecrets(t, text)
}

// Stopping gives what is pending one more try, and returns in bounded time
// when the receiver hangs.
func TestWebhookStop(t *testing.T) {
	for _, mode := range []int32{taking, hanging} {
		r, u := newReceiver(t)
		r.mode.Store(mode)
		var logs syncbuf.Buffer
		w := webhook(t, u, slog.New(slog.NewTextHandler(&logs, nil)), WebhookOptions{Timeout: 10 * time.Second})
		w.Notify(testAlert("a"))
		w.Notify(testAlert("b"))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		began := time.Now()
		if err := w.Run(ctx); err != nil {
			t.Fatal(err)
		}
		took := time.Since(began)
		got, _ := r.delivered()
		switch mode {
		case taking:
			if len(got) != 2 {
				t.Errorf("delivered %v at stop, want both alerts", got)
			}
		case hanging:
			if took > shutdownGrace+2*time.Second || !strings.Contains(logs.String(), "not delivered") {
				t.Errorf("stop took %v and logged %q; want at most %v and the alerts left logged", took, logs.String(), shutdownGrace)
			}
		}
		checkNoSecrets(t, logs.String())
	}
}

// The body is the documented JSON.
func TestWebhookBody(t *testing.T) {
	a := Alert{ID: "5f0c2a91d3b7e4a8", Status: Resolved, Kind: ConsensusSpike, Subject: "203.0.113.7",
		StartedAt: time.Date(2026, 3, 9, 10, 2, 0, 0, time.UTC), ResolvedAt: time.Date(2026, 3, 9, 10, 30, 0, 0, time.UTC),
		Spike: &SpikeDetails{Clients: peers[:1], Rate: 2e6, Peak: 2.5e6, Baseline: 1800, Threshold: DefaultMinRate}}
	b, err := json.Marshal(body{Alert: a, Host: "sia-host-1", Summary: a.Summary()})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"5f0c2a91d3b7e4a8","status":"resolved","kind":"consensus_spike","subject":"203.0.113.7",` +
		`"started_at":"2026-03-09T10:02:00Z","resolved_at":"2026-03-09T10:30:00Z",` +
		`"spike":{"class":"consensus","clients":["203.0.113.1"],"rate_bytes_per_second":2000000,"peak_bytes_per_second":2500000,` +
		`"baseline_bytes_per_second":1800,"threshold_bytes_per_second":131072},` +
		`"host":"sia-host-1","summary":"203.0.113.7's consensus traffic back to normal after peaking at 2.5 MB/s"}`
	if string(b) != want {
		t.Errorf("body\n%s\nwant\n%s", b, want)
	}
	var back Alert
	if err := json.Unmarshal(b, &back); err != nil || back.Spike.Clients[0] != peers[0] || !back.ResolvedAt.Equal(a.ResolvedAt) {
		t.Errorf("read back %+v, %v", back, err)
	}
}

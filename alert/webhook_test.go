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
	"slices"
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

	mu sync.Mutex
	// script holds answers given before the mode is looked at, one a
	// request.
	script   []answer
	attempts map[int32]int
	got      map[string]int // id + " " + status, counted
	order    []string
	paths    []string // where each alert taken was posted
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
	if r.scripted(w, req) {
		return
	}
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
	if got := req.Header.Get("Authorization"); got != "Bearer SECRETTOKEN" || req.Header.Get("Content-Type") != "application/json" || req.Method != http.MethodPost {
		r.t.Errorf("%s with headers %v, want a POST with the token and JSON", req.Method, req.Header)
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
	r.paths = append(r.paths, req.URL.Path)
	r.mu.Unlock()
}

// scripted answers req with the next answer of the script, if there is
// one left.
func (r *receiver) scripted(w http.ResponseWriter, req *http.Request) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.script) == 0 {
		return false
	}
	a := r.script[0]
	r.script = r.script[1:]
	if a.header != "" {
		w.Header().Set(a.header, a.value)
	}
	w.WriteHeader(a.status)
	return true
}

// answer is a status a receiver answers with, and a header to go with it.
type answer struct {
	status        int
	header, value string
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

// A full queue drops its oldest alert, counted and logged; a refused alert
// is retried, not dropped.
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
	if _, order := r.delivered(); strings.Join(order, ",") != "c firing,d firing,e firing" {
		t.Errorf("delivered %q, want c, d and e: a and b pushed out, c refused once and retried", order)
	}
	if s := w.Stats(); r.tried(refusing) != 1 || s.Dropped != 2 || s.Failures != 1 || s.Refused {
		t.Errorf("%d attempts refused, stats %+v; want one refusal, retried, and the 2 pushed out dropped", r.tried(refusing), s)
	}
	text := logs.String()
	if !strings.Contains(text, "webhook queue full") || !strings.Contains(text, "the webhook refuses alerts") || !strings.Contains(text, "takes alerts again") {
		t.Errorf("drop and refusal not logged:\n%s", text)
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

// waits records the waits between attempts instead of sleeping them, with
// what the webhook's stats said as each began.
type waits struct {
	mu      sync.Mutex
	lengths []time.Duration
	refused []bool
}

// record makes w record its waits in ws.
func (ws *waits) record(w *Webhook) {
	w.sleep = func(ctx context.Context, d time.Duration) error {
		refused := w.Stats().Refused
		ws.mu.Lock()
		defer ws.mu.Unlock()
		ws.lengths = append(ws.lengths, d)
		ws.refused = append(ws.refused, refused)
		return ctx.Err()
	}
}

func (ws *waits) list() ([]time.Duration, []bool) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return slices.Clone(ws.lengths), slices.Clone(ws.refused)
}

// A receiver that moves with a 301 until the URL is fixed, rotates its
// token (401 for a while), rate-limits (429) and moves with a 308 gets
// every alert once it recovers, each id and status exactly once, in
// order, none dropped: the 301 is not followed (it would turn the POST
// into a GET) but retried and logged with where it pointed, the 308 is
// followed with the POST, its body and the token, Retry-After is honoured
// within MaxWait, and the refusal shows in the stats while it lasts.
func TestWebhookReceiverRecovers(t *testing.T) {
	r, u := newReceiver(t)
	r.mode.Store(taking)
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		t.Errorf("the 301 was followed: %s %s", req.Method, req.URL.Path)
	}))
	t.Cleanup(elsewhere.Close)
	r.script = []answer{
		{http.StatusMovedPermanently, "Location", elsewhere.URL + "/hooks/SECRETPATH"},
		{http.StatusMovedPermanently, "Location", elsewhere.URL + "/hooks/SECRETPATH"},
		{status: http.StatusUnauthorized},
		{status: http.StatusUnauthorized},
		{status: http.StatusForbidden},
		{http.StatusTooManyRequests, "Retry-After", "7"},
		{http.StatusTooManyRequests, "Retry-After", "100000"},
		{http.StatusPermanentRedirect, "Location", "/v2/hooks/SECRETPATH?key=SECRETQUERY"},
	}
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	// Real lengths: the waits are recorded, not slept.
	w, err := NewWebhook(u, WebhookOptions{Host: "test-host", Token: "SECRETTOKEN", Log: log,
		Backoff: time.Second, MaxWait: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var ws waits
	ws.record(w)
	var want []string
	for _, id := range []string{"a", "b", "c"} {
		for _, status := range []Status{Firing, Resolved} {
			a := testAlert(id)
			a.Status = status
			w.Notify(a)
			want = append(want, id+" "+string(status))
		}
	}
	start(t, w)
	waitFor(t, "every alert", func() bool { return w.Stats().Queued == 0 })

	got, order := r.delivered()
	if !slices.Equal(order, want) {
		t.Errorf("delivered %q, want %q: each once, in order", order, want)
	}
	for _, key := range want {
		if got[key] != 1 {
			t.Errorf("%s delivered %d times, want once", key, got[key])
		}
	}
	if r.paths[0] != "/v2/hooks/SECRETPATH" || r.paths[1] != "/hooks/SECRETPATH" {
		t.Errorf("alerts posted to %q, want the first where the 308 pointed", r.paths)
	}
	lengths, refused := ws.list()
	s := time.Second
	if wantLengths := []time.Duration{s, 2 * s, 4 * s, 8 * s, 16 * s, 7 * s, 10 * time.Minute}; !slices.Equal(lengths, wantLengths) {
		t.Errorf("waited %v, want %v: backoff doubling, then Retry-After within MaxWait", lengths, wantLengths)
	}
	if wantRefused := []bool{false, false, true, true, true, false, false}; !slices.Equal(refused, wantRefused) {
		t.Errorf("refused during the waits: %v, want %v: while 401 and 403 last", refused, wantRefused)
	}
	if st := w.Stats(); st.Sent != 6 || st.Failures != 7 || st.Dropped != 0 || st.Refused {
		t.Errorf("stats %+v, want 6 sent after 7 failures, none dropped", st)
	}
	text := logs.String()
	for _, line := range []string{
		"a redirect to " + elsewhere.URL, // where it pointed, scheme and host only
		"the webhook refuses alerts", "answered 401",
		"cannot deliver alerts to the webhook", "answered 429",
		"takes alerts without that redirect again", "the webhook takes alerts again", "delivering alerts to the webhook again",
	} {
		if !strings.Contains(text, line) {
			t.Errorf("log lacks %q:\n%s", line, text)
		}
	}
	checkNoSecrets(t, text)
}

// A 307 or 308 to another host is followed with the POST and its body,
// but without the token, which was meant for the receiver the URL names.
func TestWebhookRedirectElsewhereDropsToken(t *testing.T) {
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		var got atomic.Value
		elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			b, _ := io.ReadAll(req.Body)
			got.Store(req.Method + " " + req.Header.Get("Authorization") + " " + string(b))
		}))
		t.Cleanup(elsewhere.Close)
		r, u := newReceiver(t)
		r.script = []answer{{code, "Location", elsewhere.URL + "/hook"}}
		var logs syncbuf.Buffer
		w := webhook(t, u, slog.New(slog.NewTextHandler(&logs, nil)), WebhookOptions{})
		w.Notify(testAlert("a"))
		start(t, w)
		waitFor(t, "the alert", func() bool { return w.Stats().Sent == 1 })
		if s, _ := got.Load().(string); !strings.HasPrefix(s, "POST  {") || !strings.Contains(s, `"id":"a"`) {
			t.Errorf("%d: the other host got %q, want a POST of the alert without the token", code, s)
		}
		checkNoSecrets(t, logs.String())
	}
}

func TestKeepsToken(t *testing.T) {
	for _, tc := range []struct {
		from, to string
		want     bool
	}{
		{"https://hooks.example/a", "https://hooks.example/b", true},
		{"http://hooks.example/a", "https://hooks.example/a", true},
		{"http://hooks.example/a", "https://hooks.example:8443/a", false},
		{"http://127.0.0.1:9000/a", "http://127.0.0.1:9001/a", false},
		{"https://hooks.example/a", "http://hooks.example/a", false},
		{"https://hooks.example/a", "https://cdn.hooks.example/a", false},
		{"https://hooks.example/a", "https://elsewhere.example/a", false},
	} {
		from, _ := url.Parse(tc.from)
		to, _ := url.Parse(tc.to)
		if got := keepsToken(from, to); got != tc.want {
			t.Errorf("keepsToken(%s, %s) = %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 9, 10, 0, 0, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"7": 7 * time.Second, "0": 0, "-3": 0, "": 0, "soon": 0,
		"99999999999999": (1 << 30) * time.Second,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		if got := retryAfter(h, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", h, got, want)
		}
	}
}

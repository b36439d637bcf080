package alert

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/back2basic/collector/internal/outage"
)

// Defaults of WebhookOptions.
const (
	DefaultWebhookTimeout = 10 * time.Second
	DefaultWebhookBackoff = time.Second
	DefaultWebhookMaxWait = 5 * time.Minute
	DefaultWebhookQueue   = 1000
)

// shutdownGrace bounds the last attempts to deliver what is pending when
// the daemon stops.
const shutdownGrace = 5 * time.Second

// WebhookOptions tune a Webhook; the zero value of each field gives its
// default.
type WebhookOptions struct {
	// Host names this host in every body; default os.Hostname().
	Host string
	// Token, when set, is sent as "Authorization: Bearer <Token>".
	Token string
	// Timeout bounds one attempt; default DefaultWebhookTimeout.
	Timeout time.Duration
	// Backoff is the wait after the first failed attempt, doubled after
	// each failure up to MaxWait; defaults DefaultWebhookBackoff and
	// DefaultWebhookMaxWait.
	Backoff, MaxWait time.Duration
	// Queue bounds the alerts waiting to be delivered; past it the oldest
	// is dropped, and logged. Default DefaultWebhookQueue.
	Queue int
	// Log hears about failed deliveries and drops; default
	// slog.Default().
	Log *slog.Logger
}

// Webhook posts every alert, as it fires and as it resolves, to a URL, as
// JSON, in the order they came:
//
//	POST <url>
//	Content-Type: application/json
//	Authorization: Bearer <token>   (when a token is set)
//
//	{
//	  "id": "5f0c2a91d3b7e4a8",          stable: firing and resolved share it
//	  "status": "firing",                or "resolved"
//	  "kind": "consensus_spike",         or "quota"
//	  "subject": "203.0.113.7",          "host", a client, or "other"; up, down or total for a quota
//	  "started_at": "2026-03-01T10:02:00+01:00",
//	  "resolved_at": "...",              only once resolved
//	  "host": "sia-host-1",
//	  "summary": "203.0.113.7's consensus traffic at 2.1 MB/s, usually 0.0018 MB/s at this hour (threshold 0.131 MB/s)",
//	  "spike": {                         for a consensus_spike
//	    "class": "consensus",
//	    "clients": ["203.0.113.7"],      the busiest of the step that fired it
//	    "rate_bytes_per_second": 2097152,
//	    "peak_bytes_per_second": 2306867,
//	    "baseline_bytes_per_second": 1800,
//	    "threshold_bytes_per_second": 131072
//	  },
//	  "quota": {                         for a quota
//	    "threshold": 0.8, "quota_bytes": 1000000000000, "used_bytes": 800004000000,
//	    "share": 0.800004, "period_start": "...", "period_end": "..."
//	  }
//	}
//
// Any 2xx answer delivers it. Other answers, errors and timeouts are tried
// again with exponential backoff; 4xx answers but 408 and 429 mean the
// receiver refuses the body, which is then dropped and logged. Delivery is
// at least once: a receiver that answered too late may see an alert twice,
// and can drop the repeat by id and status. Alerts wait in memory, a
// restart loses what is pending (the journal and the database keep them).
// Logs and errors name the URL by its scheme and host alone: its user,
// path, query and the token may hold secrets.
type Webhook struct {
	url, safeURL string
	opts         WebhookOptions
	client       *http.Client

	mu      sync.Mutex
	queue   []delivery
	seq     uint64
	stats   WebhookStats
	pending chan struct{} // wakes Run when the queue gets an alert
}

// delivery is one alert waiting to be posted.
type delivery struct {
	seq  uint64
	id   string
	body []byte
}

// WebhookStats count what a Webhook did, for the metrics.
type WebhookStats struct {
	// Queued is how many alerts wait to be delivered.
	Queued int
	// Sent counts alerts delivered; Failures failed attempts; Dropped
	// alerts given up, refused by the receiver or pushed out of a full
	// queue.
	Sent, Failures, Dropped uint64
}

// NewWebhook returns a Webhook posting to rawURL, an http or https URL.
func NewWebhook(rawURL string, opts WebhookOptions) (*Webhook, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL is not repeated: it may hold a secret.
		return nil, errors.New("webhook URL: not an absolute http:// or https:// URL")
	}
	if opts.Host == "" {
		opts.Host, _ = os.Hostname()
	}
	opts.Timeout = cmp.Or(opts.Timeout, DefaultWebhookTimeout)
	opts.Backoff = cmp.Or(opts.Backoff, DefaultWebhookBackoff)
	opts.MaxWait = cmp.Or(opts.MaxWait, DefaultWebhookMaxWait)
	opts.Queue = cmp.Or(opts.Queue, DefaultWebhookQueue)
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Webhook{
		url: rawURL, safeURL: redact(rawURL), opts: opts,
		client:  &http.Client{},
		pending: make(chan struct{}, 1),
	}, nil
}

// body is what the webhook posts: the alert, the host and a summary.
type body struct {
	Alert
	Host    string `json:"host"`
	Summary string `json:"summary"`
}

// Notify queues a for delivery; it never waits.
func (w *Webhook) Notify(a Alert) {
	b, _ := json.Marshal(body{Alert: a, Host: w.opts.Host, Summary: a.Summary()}) // no value of an Alert fails
	w.mu.Lock()
	if len(w.queue) >= w.opts.Queue {
		w.stats.Dropped++
		w.opts.Log.Warn("webhook queue full; dropping the oldest alert", "alert", w.queue[0].id, "url", w.safeURL,
			"queue", w.opts.Queue, "dropped", w.stats.Dropped)
		w.queue = w.queue[1:]
	}
	w.seq++
	w.queue = append(w.queue, delivery{seq: w.seq, id: a.ID, body: b})
	w.mu.Unlock()
	select {
	case w.pending <- struct{}{}:
	default: // Run is awake already
	}
}

// Stats returns what the webhook did so far.
func (w *Webhook) Stats() WebhookStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.stats
	s.Queued = len(w.queue)
	return s
}

// Run delivers the queued alerts until ctx is done, then gives what is
// still pending a few seconds and returns. It never returns an error:
// failures are logged and retried.
func (w *Webhook) Run(ctx context.Context) error {
	failing := outage.Outage{Start: "cannot deliver alerts to the webhook; retrying with backoff", End: "delivering alerts to the webhook again"}
	wait := w.opts.Backoff
	for {
		d, ok := w.next()
		if !ok {
			select {
			case <-ctx.Done():
				return w.flush(ctx)
			case <-w.pending:
				continue
			}
		}
		err := w.send(ctx, d)
		if ctx.Err() != nil {
			return w.flush(ctx)
		}
		var refused refusedError
		switch {
		case err == nil:
			failing.Update(ctx, w.opts.Log, time.Now(), nil, "url", w.safeURL)
			w.done(d, &w.stats.Sent)
			wait = w.opts.Backoff
		case errors.As(err, &refused):
			w.opts.Log.Error("the webhook refuses an alert; dropping it", "alert", d.id, "url", w.safeURL, "err", err)
			w.done(d, &w.stats.Dropped)
		default:
			failing.Update(ctx, w.opts.Log, time.Now(), err, "url", w.safeURL, "queued", w.Stats().Queued)
			w.count(&w.stats.Failures)
			select {
			case <-ctx.Done():
				return w.flush(ctx)
			case <-time.After(wait):
			}
			wait = min(2*wait, w.opts.MaxWait)
		}
	}
}

// flush tries once to deliver what is pending, for at most shutdownGrace,
// and logs what is left.
func (w *Webhook) flush(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	for {
		d, ok := w.next()
		if !ok {
			return nil
		}
		err := w.send(ctx, d)
		if err != nil {
			left := w.Stats().Queued
			w.opts.Log.Warn("stopping with alerts not delivered to the webhook; the journal and the database have them",
				"url", w.safeURL, "alerts", left, "err", err)
			return nil
		}
		w.done(d, &w.stats.Sent)
	}
}

// next returns the oldest alert waiting, if any.
func (w *Webhook) next() (delivery, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		return delivery{}, false
	}
	return w.queue[0], true
}

// done takes d off the queue, unless a full queue dropped it meanwhile,
// and counts it in counter.
func (w *Webhook) done(d delivery, counter *uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) > 0 && w.queue[0].seq == d.seq {
		w.queue = w.queue[1:]
	}
	*counter++
}

func (w *Webhook) count(counter *uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	*counter++
}

// refusedError is an answer saying the receiver will never take the body.
type refusedError struct{ status int }

func (e refusedError) Error() string { return fmt.Sprintf("answered %d", e.status) }

// send posts d once.
func (w *Webhook) send(ctx context.Context, d delivery) error {
	ctx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(d.body))
	if err != nil {
		return redactError(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if w.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+w.opts.Token)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return redactError(err)
	}
	defer resp.Body.Close()
	// Read a little of the body so the connection can be used again.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests:
		return refusedError{code}
	default:
		return fmt.Errorf("answered %d", code)
	}
}

// redact returns the scheme and host of a URL, without its user, path,
// query or fragment, which may hold secrets.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return "(webhook URL)"
	}
	return u.Scheme + "://" + u.Host
}

// redactError returns err with the URL net/http puts in its errors
// redacted.
func redactError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: redact(ue.URL), Err: ue.Err}
	}
	return err
}

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
	"strconv"
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

// maxRedirects bounds the 307 and 308 redirects one attempt follows.
const maxRedirects = 5

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
	// each failure up to MaxWait, which also caps the wait a receiver asks
	// for in Retry-After; defaults DefaultWebhookBackoff and
	// DefaultWebhookMaxWait.
	Backoff, MaxWait time.Duration
	// Queue bounds the alerts waiting to be delivered; past it the oldest
	// is dropped, counted and logged: the one way an alert is lost.
	// Default DefaultWebhookQueue.
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
// Any 2xx answer delivers it. Every other answer, error and timeout is
// tried again, with exponential backoff, or after the Retry-After a 429 or
// 503 asks for, within MaxWait. That includes 401, 403 and 404, which a
// token being rotated or a receiver being redeployed answers for a while:
// they are logged once as they start, and Stats().Refused says they last.
// An alert is dropped only when the queue overflows.
//
// A redirect never turns the POST into a GET: a 307 or 308 is followed
// with the same method and body, any other redirect (301, 302, 303) is a
// failure, retried and logged with where it pointed, for the operator to
// set the URL to. The token follows a 307 or 308 only to the same host and
// port, and never from https to http: it proves who we are to the receiver
// the operator named, not to wherever that sends us.
//
// Delivery is at least once: a receiver that answered too late may see an
// alert twice, and can drop the repeat by id and status. Alerts wait in
// memory, a restart loses what is pending (the journal and the database
// keep them). Logs and errors name URLs by their scheme and host alone:
// their user, path, query and the token may hold secrets.
type Webhook struct {
	url, safeURL string
	opts         WebhookOptions
	client       *http.Client

	// sleep waits between attempts; tests replace it so that they do not
	// wait for real backoff lengths.
	sleep func(ctx context.Context, d time.Duration) error

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
	// Refused is whether the receiver's last answer refused the alert
	// (401, 403, 404 or another 4xx but 408 and 429): a token or URL to
	// fix. It is retried all the same.
	Refused bool
	// Sent counts alerts delivered; Failures failed attempts; Dropped
	// alerts pushed out of a full queue.
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
		client:  &http.Client{CheckRedirect: checkRedirect},
		sleep:   sleep,
		pending: make(chan struct{}, 1),
	}, nil
}

// checkRedirect follows 307 and 308, which keep the method and body, and
// hands any other redirect back to send as the answer, so that it is not
// turned into a GET. The token goes along only where keepsToken says.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if code := req.Response.StatusCode; code != http.StatusTemporaryRedirect && code != http.StatusPermanentRedirect {
		return http.ErrUseLastResponse
	}
	if len(via) > maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if !keepsToken(via[0].URL, req.URL) {
		req.Header.Del("Authorization")
	}
	return nil
}

// keepsToken reports whether a redirect from the webhook URL to to may
// carry the token: to the same host and port (another port can be another
// service), and not down from https to http, where it would cross the
// network in clear.
func keepsToken(from, to *url.URL) bool {
	return from.Host == to.Host && (from.Scheme == to.Scheme || to.Scheme == "https")
}

// sleep waits for d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
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
	p := newProblems()
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
		p.update(ctx, w.opts.Log, err, "url", w.safeURL, "queued", w.Stats().Queued)
		if err == nil {
			w.done(d)
			wait = w.opts.Backoff
			continue
		}
		var answer answerError
		errors.As(err, &answer)
		w.failed(answer.refused())
		pause := wait
		if answer.retryAfter > 0 {
			pause = min(answer.retryAfter, w.opts.MaxWait)
		}
		if w.sleep(ctx, pause) != nil {
			return w.flush(ctx)
		}
		wait = min(2*wait, w.opts.MaxWait)
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
		w.done(d)
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

// done takes d, delivered, off the queue, unless a full queue dropped it
// meanwhile, and counts it sent.
func (w *Webhook) done(d delivery) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) > 0 && w.queue[0].seq == d.seq {
		w.queue = w.queue[1:]
	}
	w.stats.Sent++
	w.stats.Refused = false
}

// failed counts a failed attempt, refused by the receiver or not.
func (w *Webhook) failed(refused bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stats.Failures++
	w.stats.Refused = refused
}

// problems logs each kind of failed delivery once as it starts and once
// as an alert gets through again, not on every attempt.
type problems struct{ failing, redirected, refused outage.Outage }

func newProblems() *problems {
	return &problems{
		failing: outage.Outage{Start: "cannot deliver alerts to the webhook; retrying with backoff", End: "delivering alerts to the webhook again"},
		redirected: outage.Outage{Start: "the webhook answers with a redirect that would turn the POST into a GET; retrying with backoff: set its URL to where it points",
			End: "the webhook takes alerts without that redirect again"},
		refused: outage.Outage{Start: "the webhook refuses alerts; retrying with backoff: check its URL and ALERT_WEBHOOK_TOKEN",
			End: "the webhook takes alerts again"},
	}
}

// update records the outcome of an attempt: err, or nil for an alert
// delivered, which ends every kind of failure.
func (p *problems) update(ctx context.Context, log *slog.Logger, err error, attrs ...any) {
	now := time.Now()
	if err != nil {
		p.of(err).Update(ctx, log, now, err, attrs...)
		return
	}
	for _, o := range []*outage.Outage{&p.failing, &p.redirected, &p.refused} {
		o.Update(ctx, log, now, nil, attrs...)
	}
}

// of returns the kind of failure err is.
func (p *problems) of(err error) *outage.Outage {
	var answer answerError
	switch {
	case !errors.As(err, &answer):
		return &p.failing
	case answer.location != "":
		return &p.redirected
	case answer.refused():
		return &p.refused
	}
	return &p.failing
}

// answerError is an answer other than 2xx. Every one is tried again.
type answerError struct {
	status int
	// location is where a redirect not followed pointed, redacted.
	location string
	// retryAfter is the wait a 429 or 503 asked for; 0 when none.
	retryAfter time.Duration
}

func (e answerError) Error() string {
	if e.location != "" {
		return fmt.Sprintf("answered %d, a redirect to %s", e.status, e.location)
	}
	return fmt.Sprintf("answered %d", e.status)
}

// refused reports whether the answer refuses the alert itself, as a
// receiver does with a token it no longer takes (401) or at a path it no
// longer serves (404), rather than asking for it later.
func (e answerError) refused() bool {
	return e.status >= 400 && e.status < 500 && e.status != http.StatusRequestTimeout && e.status != http.StatusTooManyRequests
}

// retryAfter reads a Retry-After header, seconds or an HTTP date; 0 when
// there is none or it cannot be read. Seconds are bounded to some 34 years
// so that they cannot overflow a Duration; MaxWait caps the wait anyway.
func retryAfter(h string, now time.Time) time.Duration {
	if s, err := strconv.Atoi(h); err == nil && s > 0 {
		return time.Duration(min(s, 1<<30)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

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
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	answer := answerError{status: code, retryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	if code >= 300 && code < 400 {
		answer.location = "(no Location)"
		if loc, err := resp.Location(); err == nil {
			answer.location = redact(loc.String())
		}
	}
	return answer
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

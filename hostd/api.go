package hostd

import (
	"context"
	"net/url"
	"strconv"
	"time"
)

// Period is the length of the metrics periods collector reads: hostd's
// finest, 5 minutes ("5m"), into which it writes its counters once a minute.
const Period = 5 * time.Minute

// PeriodMetrics returns hostd's running totals for n 5-minute periods
// from start (rounded down to a period by hostd).
func (c *Client) PeriodMetrics(ctx context.Context, start time.Time, n int) ([]Metrics, error) {
	var out []Metrics
	q := url.Values{"start": {start.UTC().Format(time.RFC3339)}, "periods": {strconv.Itoa(n)}}
	err := c.get(ctx, "/metrics/5m", q, &out)
	return out, err
}

// Peers returns the syncer peers hostd is connected to now.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var out []Peer
	err := c.get(ctx, "/syncer/peers", nil, &out)
	return out, err
}

// State is the part of GET /api/state collector reads.
type State struct {
	// Version is hostd's release, e.g. "v2.10.2".
	Version string `json:"version"`
}

// State returns what hostd says about itself.
func (c *Client) State(ctx context.Context) (State, error) {
	var out State
	err := c.get(ctx, "/state", nil, &out)
	return out, err
}

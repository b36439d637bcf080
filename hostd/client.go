// Package hostd reads what hostd, the Sia host software, counts about
// itself through its HTTP API: the payload bytes and revenue of each
// metrics period, its egress price and its syncer peers. hostd knows no
// client addresses and collector knows no money; the daemon stores both
// side by side.
//
// The types here follow SiaFoundation/hostd's published JSON (api/types.go,
// host/metrics/types.go, v2.x) and keep only the fields collector uses.
package hostd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultURL is where hostd serves its API unless told otherwise.
const DefaultURL = "http://127.0.0.1:9980/api"

const (
	// requestTimeout bounds one request, so a stalled hostd costs the
	// poller one timeout, never a flush or a drain.
	requestTimeout = 10 * time.Second
	// maxBody bounds what is read of an answer: a day of 5-minute periods
	// is about 300 KiB of hostd's JSON.
	maxBody = 8 << 20
	// maxErrorText bounds the part of an error answer quoted in a log line.
	maxErrorText = 200
)

// ErrUnauthorized is returned when hostd refuses the password. hostd
// answers 401 without a WWW-Authenticate header, so the password is sent
// with every request rather than after a challenge.
var ErrUnauthorized = errors.New("hostd refused the API password (401): check HOSTD_API_PASSWORD")

// StatusError is an answer other than 200 or 401.
type StatusError struct {
	Path string
	Code int
	Text string // the start of hostd's answer, or where a redirect pointed
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("hostd answered GET %s with %d %s: %s", e.Path, e.Code, http.StatusText(e.Code), e.Text)
}

// Client reads hostd's API. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	password string
	http     *http.Client
}

// New returns a client of the API at apiURL (hostd's address with its
// /api prefix) that authenticates with password, as hostd's own clients
// do: HTTP basic auth with an empty user name.
func New(apiURL, password string) (*Client, error) {
	u, err := url.Parse(apiURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("hostd API URL %q: accepted: http(s)://host:port/api, e.g. %s", apiURL, DefaultURL)
	}
	if u.User != nil {
		// A password in the URL would end up in every error that quotes it.
		return nil, fmt.Errorf("hostd API URL %s: no user or password in the URL; set HOSTD_API_PASSWORD", u.Redacted())
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Client{
		base:     u,
		password: password,
		http: &http.Client{
			Timeout: requestTimeout,
			// hostd never redirects; a redirect is something else
			// answering on its address and is reported, not followed
			// with the password.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// String returns the API's address, which holds no secret.
func (c *Client) String() string { return c.base.String() }

// get reads the JSON answer of GET path?query into out.
func (c *Client) get(ctx context.Context, path string, query url.Values, out any) error {
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth("", c.password)
	resp, err := c.http.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			// url.Error repeats the URL; keep the cause only.
			err = uerr.Err
		}
		return fmt.Errorf("hostd at %s: GET %s: %w", c.base, path, err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxBody+1)
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return ErrUnauthorized
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return &StatusError{Path: path, Code: resp.StatusCode, Text: "redirected to " + resp.Header.Get("Location") + " (not followed)"}
	case resp.StatusCode != http.StatusOK:
		text, _ := io.ReadAll(io.LimitReader(body, maxErrorText))
		return &StatusError{Path: path, Code: resp.StatusCode, Text: strings.TrimSpace(string(text))}
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return fmt.Errorf("hostd at %s: GET %s: reading the answer: %w", c.base, path, err)
	}
	if len(data) > maxBody {
		return fmt.Errorf("hostd at %s: GET %s: answer larger than %d MiB", c.base, path, maxBody>>20)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("hostd at %s: GET %s: not hostd's JSON: %w", c.base, path, err)
	}
	return nil
}

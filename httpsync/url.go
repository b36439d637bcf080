package httpsync

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
)

// ParseURL reads SYNC_HTTP_URL: https, or plain http to a loopback
// address only, since the rows, and the token, would otherwise cross a
// network in the clear. The errors quote no part of the URL, which may
// hold a key.
func ParseURL(v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return nil, errors.New("not a URL; accepted: https://host[:port]/path, or http://127.0.0.1[:port]/path (loopback only)")
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return u, nil
	case "http":
		if isLoopback(u.Hostname()) {
			return u, nil
		}
		return nil, errors.New("http to " + u.Hostname() + " would send rows and token in the clear; accepted: https://, or http:// to a loopback address (127.0.0.1, ::1, localhost)")
	}
	return nil, errors.New("scheme " + u.Scheme + "; accepted: https://, or http:// to a loopback address")
}

// isLoopback reports whether host is a loopback address or localhost,
// which resolves to one on every system the collector runs on.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.IsLoopback()
}

// where names u for logs and errors without what may be secret in it: a
// password, a query holding a key.
func where(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

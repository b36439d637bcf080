package web

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The bounds of a request that reads the traffic. A report is refused
// past maxRows rows (report.Request.MaxRows), so that its memory stays
// within a few MiB however far back it reaches; at most maxHeavy are read
// at once, so that a burst of them multiplies that by no more; and each
// is cancelled after requestTimeout, its reads with it, well before the
// write timeout would cut the connection with the work still going on.
const (
	maxRows        = 10_000
	maxHeavy       = 4
	requestTimeout = 30 * time.Second
	// retryAfter is the Retry-After of a request refused for the others
	// running, in seconds: most reports take less.
	retryAfter = 1
)

// heavy guards a handler that reads the traffic: it answers 503 with
// Retry-After while s.heavySlots are taken, and cancels the request's
// context after s.requestTimeout.
func (s *Server) heavy(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.heavySlots <- struct{}{}:
			defer func() { <-s.heavySlots }()
		default:
			w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("%d requests are reading the traffic, the most at once; retry in %d s", cap(s.heavySlots), retryAfter))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.requestTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// loopbackNames are the names of this machine that need no setting:
// IP addresses of loopback are allowed as such.
var loopbackNames = []string{"localhost"}

// checkHost refuses, with 421 Misdirected Request, a request whose Host
// header names neither this server nor loopback. A web page the operator
// opens can otherwise read the API by DNS rebinding: its own name made to
// resolve to 127.0.0.1, the browser sends that name as the Host. An IP
// address in the Host is one of this server's when it is the address the
// connection came to, so that Prometheus can scrape any of the machine's
// addresses when the server listens on all of them.
func (s *Server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.allowedHost(r) {
			writeError(w, http.StatusMisdirectedRequest, fmt.Sprintf("host %q is not a name of this server; accepted: the address it listens on, localhost, 127.0.0.1, [::1] and the names of HTTP_ALLOWED_HOSTS", r.Host))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allowedHost reports whether r's Host names this server.
func (s *Server) allowedHost(r *http.Request) bool {
	host := hostName(r.Host)
	if host == "" {
		return false
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return slices.Contains(loopbackNames, host) || slices.Contains(s.allowedHosts, host)
	}
	addr = addr.Unmap()
	if addr.IsLoopback() || slices.Contains(s.allowedHosts, addr.String()) {
		return true
	}
	if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(local.String()); err == nil && ap.Addr().Unmap() == addr {
			return true
		}
	}
	return false
}

// hostName returns the host of a Host header or of an address, without
// its port, brackets or final dot, in lower case: the form allowedHost
// compares.
func hostName(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if addr, err := netip.ParseAddr(host); err == nil {
		return addr.Unmap().String()
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

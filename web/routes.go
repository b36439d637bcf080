package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// securityHeaders go on every response. The dashboard loads its scripts
// and styles from its own files, never inline, so a script injected into
// a page cannot run; no page of the server may be framed, and no address
// of it leaks in a Referer to elsewhere.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
	"X-Content-Type-Options":  "nosniff",
	"X-Frame-Options":         "DENY",
	"Referrer-Policy":         "no-referrer",
}

// routes returns the server's handler: every endpoint, behind the checks
// every request passes.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	if s.cfg.Metrics != nil {
		mux.Handle("/metrics", promhttp.HandlerFor(s.cfg.Metrics, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelError),
			// A collector that fails leaves its series out, not the
			// others.
			ErrorHandling: promhttp.ContinueOnError,
		}))
	}
	eps := s.endpoints()
	for _, e := range eps {
		mux.Handle(e.Path, s.heavy(s.api(e.serve)))
	}
	mux.Handle(apiRoot+"{$}", s.api(serveIndex(eps)))
	mux.Handle("/api/", s.api(func(_ io.Writer, r *http.Request) error {
		return notFound{fmt.Errorf("no endpoint %s; %s lists them", r.URL.Path, apiRoot)}
	}))
	if s.cfg.Dashboard != nil {
		mux.Handle("/", s.cfg.Dashboard)
	}
	return secure(s.checkHost(readOnly(mux)))
}

// secure sets securityHeaders.
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range securityHeaders {
			w.Header().Set(k, v)
		}
		next.ServeHTTP(w, r)
	})
}

// readOnly refuses every method but GET and HEAD: nothing the server
// serves changes anything.
func readOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s: accepted: GET, HEAD; the server is read-only", r.Method))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// badRequest is an error in the request: a parameter the endpoint does not
// take, or a value it does not accept.
type badRequest struct{ error }

// notFound is a request for an endpoint there is none of.
type notFound struct{ error }

// internalError is what a client hears of a failure of the server's own,
// whose cause, naming files, goes to the journal only.
const internalError = "reading the traffic failed; the collector's journal says why"

// api turns fn, which writes an endpoint's JSON answer to w, into a
// handler. The answer goes out as fn writes it, never held whole: an
// error before its first byte is answered with its status, one after it
// cuts the connection, the only way left to tell the client that what it
// got is not all.
func (s *Server) api(fn func(w io.Writer, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		body := &answer{w: w}
		err := fn(body, r)
		var bad badRequest
		var missing notFound
		switch {
		case err == nil:
		case body.begun:
			s.logFailure(r, err)
			panic(http.ErrAbortHandler)
		case errors.As(err, &bad):
			writeError(w, http.StatusBadRequest, err.Error())
		case errors.As(err, &missing):
			writeError(w, http.StatusNotFound, err.Error())
		case errors.Is(r.Context().Err(), context.DeadlineExceeded):
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("the answer took longer than %s, the most one may take; ask for less, such as a later since= or top=N", s.requestTimeout))
		default:
			s.logFailure(r, err)
			writeError(w, http.StatusInternalServerError, internalError)
		}
	})
}

// logFailure logs why r failed, unless its client went away, which
// cancels its reads: not a failure of the server's.
func (s *Server) logFailure(r *http.Request, err error) {
	if r.Context().Err() == nil {
		s.log.Error("answer an api request", "path", r.URL.Path, "query", r.URL.RawQuery, "err", err)
	}
}

// answer is the body of an API answer: its first write sends the header
// of a JSON answer with status 200.
type answer struct {
	w     http.ResponseWriter
	begun bool
}

func (a *answer) Write(p []byte) (int, error) {
	if !a.begun {
		a.begun = true
		a.w.Header().Set("Content-Type", "application/json")
		a.w.WriteHeader(http.StatusOK)
	}
	return a.w.Write(p)
}

// writeError answers status with {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	var body bytes.Buffer
	encode(&body, struct { // a string always encodes
		Error string `json:"error"`
	}{msg})
	writeJSON(w, status, body.Bytes())
}

// writeJSON answers status with body, a JSON document.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body) // a client gone away is its own loss
}

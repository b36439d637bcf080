// Package hostdtest runs an HTTP server that answers hostd's API endpoints
// collector reads, with JSON shaped as hostd writes it (the structs in
// types.go follow SiaFoundation/hostd's published types at the version
// each names), including hostd's error answers and stalls, so the daemon
// can be tested against "hostd" on a machine where hostd cannot run.
package hostdtest

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Server answers /api/state, /api/metrics/5m and /api/syncer/peers.
type Server struct {
	*httptest.Server
	password string

	mu      sync.Mutex
	version Version
	totals  []Totals // running totals, one per 5-minute period, oldest first
	peers   []Peer
	status  int           // answer every request with this status, 0: normally
	stall   time.Duration // hold every answer this long first
	served  int           // requests answered
	listed  []Listed      // the answers of /api/syncer/peers
}

// Listed is an answer of /api/syncer/peers: the peers listed, and when.
type Listed struct {
	At    time.Time
	Peers []Peer
}

// Start runs a server that takes password and shapes its JSON as version
// does; it stops when the test ends.
func Start(t testing.TB, password string, version Version) *Server {
	s := &Server{password: password, version: version}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// StartOn is Start serving on ln, a listener the test opened: in a lab's
// network namespace, say, where a daemon run there can reach it.
func StartOn(t testing.TB, ln net.Listener, password string, version Version) *Server {
	s := &Server{password: password, version: version}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.Server.Listener.Close()
	s.Server.Listener = ln
	s.Server.Start()
	t.Cleanup(s.Close)
	return s
}

// PeersListed returns every answer of /api/syncer/peers so far, oldest
// first.
func (s *Server) PeersListed() []Listed {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.listed)
}

// URL returns the API's address as HOSTD_API_URL takes it.
func (s *Server) APIURL() string { return s.Server.URL + "/api" }

// AddPeriod appends the running totals at the end of the next period.
func (s *Server) AddPeriod(t Totals) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.totals = append(s.totals, t)
}

// SetPeers replaces the syncer's peer list.
func (s *Server) SetPeers(peers ...Peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peers = append([]Peer(nil), peers...)
}

// Fail makes every answer carry status (0 answers normally again).
func (s *Server) Fail(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

// Stall holds every answer for d before writing it (0: no stall).
func (s *Server) Stall(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stall = d
}

// Served returns how many requests the server answered.
func (s *Server) Served() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.served++
	status, stall := s.status, s.stall
	s.mu.Unlock()
	if stall > 0 {
		select {
		case <-time.After(stall):
		case <-r.Context().Done():
			return
		}
	}
	// hostd's API (jape.BasicAuth) takes any user name and answers a wrong
	// password with 401 and no WWW-Authenticate header.
	if _, pass, ok := r.BasicAuth(); !ok || pass != s.password {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if status != 0 {
		http.Error(w, "failed to get metrics: database is locked", status)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Method != http.MethodGet:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	case r.URL.Path == "/api/state":
		writeJSON(w, State{Version: string(s.version), StartTime: time.Unix(0, 0).UTC()})
	case r.URL.Path == "/api/syncer/peers":
		s.listed = append(s.listed, Listed{At: time.Now(), Peers: s.peers})
		writeJSON(w, s.peers)
	case r.URL.Path == "/api/metrics/5m":
		s.serveMetrics(w, r)
	default:
		http.Error(w, "404 page not found", http.StatusNotFound)
	}
}

// serveMetrics answers as hostd's handleGETPeriodMetrics does: start
// rounded down to a period, periods entries, each stamped with its
// period's start and holding the running totals at its end (the last
// known totals for periods with no writes).
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	start, err := time.Parse(time.RFC3339, r.URL.Query().Get("start"))
	if err != nil {
		http.Error(w, "failed to decode form value \"start\": "+err.Error(), http.StatusBadRequest)
		return
	}
	n, err := strconv.Atoi(r.URL.Query().Get("periods"))
	if err != nil || n < 0 {
		http.Error(w, "failed to decode form value \"periods\"", http.StatusBadRequest)
		return
	}
	start = start.UTC().Truncate(5 * time.Minute)
	out := make([]any, 0, n)
	for i := range n {
		at := start.Add(time.Duration(i) * 5 * time.Minute)
		out = append(out, s.version.metrics(s.totalsAt(at), at))
	}
	writeJSON(w, out)
}

// totalsAt returns the totals at the end of the period starting at at:
// the last period at or before it.
func (s *Server) totalsAt(at time.Time) Totals {
	var last Totals
	for _, t := range s.totals {
		if t.Start.After(at) {
			break
		}
		last = t
	}
	return last
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

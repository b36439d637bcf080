package web

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/floodtest"
	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/internal/testkit/selfexec"
)

// floodedClients is how many forged clients the bounds test's database
// holds from yesterday: far more than a report may list.
const floodedClients = 200_000

// rssMargin is how far above its memory before the requests the daemon's
// peak may go.
const rssMargin = 64 << 20

// TestHTTPBounds runs the daemon with real traffic on a database a flood
// of forged addresses filled, and asks its HTTP server what took a
// gigabyte each before (issue 18): by hour since 1990, by hour since the
// year 1, every client of the flood; one at a time, then five of each at
// once. Each is refused with a 400 that says how to ask for less, or
// with a 503 and Retry-After while others are read, and the daemon's
// peak memory (VmHWM, reset before) stays within rssMargin of its memory
// before. A foreign Host header gets 421, and Prometheus scrapes the
// listen address. Counting stays exact against the capture throughout.
func TestHTTPBounds(t *testing.T) {
	l := labtest.New(t)
	db := filepath.Join(t.TempDir(), "collector.db")
	y, m, d := time.Now().Date()
	if err := floodtest.WriteDay(t.Context(), db, floodedClients, time.Date(y, m, d-1, 0, 0, 0, 0, time.Local)); err != nil {
		t.Fatal(err)
	}
	daemon := labtest.StartDaemon(t, l, selfexec.Collector(), "-sqlite-path", db, "-flush-interval", "1s", "-live-interval", "0", "-reverse-dns", "0",
		"-http-listen", ":9986")
	stopTraffic := labtest.SteadyTraffic(t, l, 200*time.Millisecond)
	// Flushes with traffic, and the rollups of the flood's hours, before
	// the memory the requests start from is read.
	time.Sleep(5 * time.Second)
	before := procStatus(t, daemon.Pid(), "VmRSS")
	// Writing 5 to clear_refs resets the peak to the memory now.
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", daemon.Pid()), []byte("5"), 0); err != nil {
		t.Fatal(err)
	}

	local := &http.Client{Transport: l.HTTPTransport(l.HostNS), Timeout: time.Minute}
	asks := map[string]string{
		"/api/v1/report?by=hour&since=1990-01-01": "more than 10000 hours in this span, the most one answer holds; ask for a later since= or by=day",
		"/api/v1/report?by=hour&since=0001-01-01": "more than 10000 hours in this span, the most one answer holds; ask for a later since= or by=day",
		"/api/v1/report?by=client&top=0&since=2d": "more than 10000 clients in this span, the most one answer holds; ask for top=N (N up to 10000), a later since= or client=",
	}
	for path, want := range asks {
		if code, body := ask(t, local, "http://"+httpListen+path, ""); code != http.StatusBadRequest || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d %s; want 400 and %q", path, code, body, want)
		}
	}
	var burst sync.WaitGroup
	for range 5 {
		for path, want := range asks {
			burst.Go(func() {
				code, body := ask(t, local, "http://"+httpListen+path, "")
				if code == http.StatusServiceUnavailable && strings.Contains(body, "retry in 1 s") {
					return
				}
				if code != http.StatusBadRequest || !strings.Contains(body, want) {
					t.Errorf("GET %s, five at once: %d %s; want 400 and %q, or 503", path, code, body, want)
				}
			})
		}
	}
	burst.Wait()
	peak := procStatus(t, daemon.Pid(), "VmHWM")
	t.Logf("daemon memory: %d MiB before the requests, peak %d MiB during them", before>>20, peak>>20)
	if peak-before > rssMargin {
		t.Errorf("peak memory %d MiB, %d MiB above the %d MiB before; want at most %d MiB above", peak>>20, (peak-before)>>20, before>>20, rssMargin>>20)
	}

	if code, body := ask(t, local, "http://"+httpListen+"/api/v1/billing", "evil.example:9986"); code != http.StatusMisdirectedRequest {
		t.Errorf("a foreign Host: %d %s; want 421", code, body)
	}
	// Prometheus, in another namespace, scrapes the address the server
	// listens on there.
	remote := &http.Client{Transport: l.HTTPTransport(l.ClientNS), Timeout: time.Minute}
	hostAddr := netip.AddrPortFrom(l.HostAddrs[0], 9986).String()
	if code, body := ask(t, remote, "http://"+hostAddr+"/metrics", ""); code != http.StatusOK || !strings.Contains(body, "collector_traffic_bytes_total") {
		t.Errorf("scrape of %s: %d; want 200 and the traffic totals", hostAddr, code)
	}

	counted := stopTraffic()
	// Two flush intervals with no traffic: everything counted is stored.
	time.Sleep(2500 * time.Millisecond)
	if err := daemon.Stop(); err != nil {
		t.Fatal(err)
	}
	stored := labtest.Stored(t, db)
	for ip := range stored {
		if addr, err := netip.ParseAddr(ip); err != nil || !slices.Contains(l.ClientAddrs, addr) {
			delete(stored, ip) // the flood's
		}
	}
	labtest.AssertSame(t, stored, counted)
}

// ask sends GET for url with client, with the Host header host unless
// it is empty, and returns the status and the body.
func ask(t *testing.T, client *http.Client, url, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// procStatus reads a memory field of /proc/PID/status, in bytes.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		if v, ok := strings.CutPrefix(lines.Text(), field+":"); ok {
			kB, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s of %d: %v", field, pid, err)
			}
			return kB << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

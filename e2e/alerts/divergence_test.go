package alerts

import (
	"encoding/json"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/back2basic/collector/alert"
	"github.com/back2basic/collector/internal/testkit/hostdtest"
	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/internal/testkit/selfexec"
	"github.com/back2basic/collector/lab"
)

// httpListen is where the daemon's HTTP server listens in the lab's host
// namespace.
const httpListen = "127.0.0.1:9986"

// TestDivergenceAlert runs the real daemon in the lab against a server
// answering as hostd v2.10.2 does while real RHP traffic flows. The
// server's counters stand still for the first whole period the daemon
// counts (hostd reachable, its totals not moving), then move again: the
// divergence alert fires once, as a journal warning, in /metrics and to
// the webhook, and resolves once, everywhere.
//
// hostd's periods are 5 minutes long and final a minute after they end:
// the test takes 11 to 16 minutes.
func TestDivergenceAlert(t *testing.T) {
	l := labtest.New(t)
	const password = "lab-hostd-password"
	hostd := hostdtest.StartOn(t, listenIn(t, l), password, hostdtest.V2_10_2)
	hook := &receiver{}
	hookServer := &http.Server{Handler: hook, ReadHeaderTimeout: 10 * time.Second}
	hookListener := listenIn(t, l)
	go hookServer.Serve(hookListener)
	t.Cleanup(func() { hookServer.Close() })

	// The first whole period the daemon counts is the one after the one
	// it starts in.
	stalled := time.Now().Truncate(alert.HostdPeriod).Add(alert.HostdPeriod)
	counting := stalled.Add(alert.HostdPeriod)
	price := big.NewInt(25e12) // 25 SC per TB, in hastings per byte
	totals := func(start time.Time, payload uint64) hostdtest.Totals {
		return hostdtest.Totals{Start: start, RHP: hostdtest.Data{Ingress: payload, Egress: payload},
			Syncer: hostdtest.Data{Ingress: 1000, Egress: 1000}, EarnedEgress: new(big.Int), PotentialEgress: new(big.Int), EgressPrice: price}
	}
	// Totals before the daemon starts, the same at the end of the stalled
	// period, then 9 MiB higher each way at the end of each period after,
	// for as long as the test may take.
	hostd.AddPeriod(totals(stalled.Add(-2*alert.HostdPeriod), 1<<20))
	for i := range 6 {
		hostd.AddPeriod(totals(counting.Add(time.Duration(i)*alert.HostdPeriod), uint64(1+9*(i+1))<<20))
	}

	db := filepath.Join(t.TempDir(), "collector.db")
	stopTraffic := labtest.SteadyTraffic(t, l, 200*time.Millisecond)
	defer stopTraffic()
	d := labtest.StartDaemon(t, l, selfexec.Collector(), "-sqlite-path", db, "-flush-interval", "1s", "-live-interval", "0",
		"-reverse-dns", "0", "-alert-spikes", "0", "-http-listen", httpListen, "-alert-webhook-url", "http://"+hookListener.Addr().String(),
		"-hostd-api-url", hostd.APIURL(), "-hostd-api-password", password, "-hostd-poll-interval", "10s",
		// One period fires and one resolves; the lab's traffic is
		// small.
		"-alert-hostd-divergence-periods", "1", "-alert-hostd-divergence-min-bytes", "1")
	if now := time.Now(); !now.Before(stalled) {
		t.Skipf("the daemon took until %v to start, past the start of the period to stall, %v", now, stalled)
	}
	client := &http.Client{Transport: l.HTTPTransport(l.HostNS), Timeout: 10 * time.Second}

	// Final a minute after the period ends, read within 10 s, judged
	// with the next flush.
	fired := hook.await(t, alert.Firing, stalled.Add(alert.HostdPeriod+3*time.Minute))
	if active := activeDivergences(t, client); active != 1 {
		t.Errorf("collector_alerts_active{kind=\"hostd_divergence\"} %v while it fires, want 1", active)
	}
	resolved := hook.await(t, alert.Resolved, counting.Add(alert.HostdPeriod+3*time.Minute))
	if active := activeDivergences(t, client); active != 0 {
		t.Errorf("collector_alerts_active{kind=\"hostd_divergence\"} %v once resolved, want 0", active)
	}
	// Stopped with the traffic still flowing, which hostd goes on
	// counting: a period without either would diverge.
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}

	if got := hook.list(); len(got) != 2 {
		t.Errorf("webhook received %d alerts, want one firing and one resolved: %+v", len(got), got)
	}
	if fired.ID != resolved.ID || fired.Kind != alert.HostdDivergence || fired.Subject != alert.RHPSubject ||
		!fired.StartedAt.Equal(stalled) || fired.Divergence == nil || fired.Divergence.Reason != alert.HostdCountsNone ||
		fired.Divergence.HostdBytes != 0 || fired.Divergence.WireBytes == 0 {
		t.Errorf("fired %+v %+v: want hostd counting none of the RHP bytes on the wire from %v", fired, fired.Divergence, stalled)
	}
	if !resolved.ResolvedAt.Equal(counting.Add(alert.HostdPeriod)) || resolved.Divergence.HostdBytes != 2*(9<<20) {
		t.Errorf("resolved %+v %+v: want it at %v, hostd counting what the server served", resolved, resolved.Divergence, counting.Add(alert.HostdPeriod))
	}
	out := d.Output()
	for _, msg := range []string{"RHP bytes on the wire diverge from hostd's count", "RHP bytes on the wire back to their usual ratio to hostd's count"} {
		if n := strings.Count(out, msg); n != 1 {
			t.Errorf("the journal says %q %d times, want once:\n%s", msg, n, out)
		}
	}
	if strings.Contains(out, password) {
		t.Error("hostd's password was logged")
	}
}

// listenIn listens on loopback in the lab's host namespace, where the
// daemon runs.
func listenIn(t *testing.T, l *lab.Lab) net.Listener {
	t.Helper()
	ln, err := l.ListenTCP(l.HostNS, netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// receiver is a webhook receiver: it keeps every alert posted to it.
type receiver struct {
	mu     sync.Mutex
	alerts []alert.Alert
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	var a alert.Alert
	if err == nil {
		err = json.Unmarshal(body, &a)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.alerts = append(r.alerts, a)
	r.mu.Unlock()
}

func (r *receiver) list() []alert.Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.alerts)
}

// await waits until deadline for an alert of status to be posted, and
// returns the first.
func (r *receiver) await(t *testing.T, status alert.Status, deadline time.Time) alert.Alert {
	t.Helper()
	for {
		for _, a := range r.list() {
			if a.Status == status {
				return a
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s alert posted by %v; posted: %+v", status, deadline, r.list())
		}
		time.Sleep(time.Second)
	}
}

// activeDivergences reads collector_alerts_active{kind="hostd_divergence"}
// from the daemon's /metrics.
func activeDivergences(t *testing.T, client *http.Client) float64 {
	t.Helper()
	resp, err := client.Get("http://" + httpListen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range families["collector_alerts_active"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "kind" && l.GetValue() == string(alert.HostdDivergence) {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatal("no collector_alerts_active{kind=\"hostd_divergence\"} in /metrics")
	return 0
}

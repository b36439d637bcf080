package httpsync

import (
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/dbtest"
	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/internal/testkit/selfexec"
	"github.com/back2basic/collector/internal/testkit/storetest"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// TestHTTPSyncThroughFailures sends three days of history and real lab
// traffic from the real daemon
// to the example receiver, run as a process, while the receiver answers
// 500 (its database locked), stalls past the request timeout (stopped),
// is stopped while a batch is in flight and the daemon is killed with
// SIGKILL then, and is killed and started again. Once the daemon has
// stopped, having sent what its last flush stored, the receiver holds
// exactly the local rows of every table, row by row: none lost, none
// added to; and still does after collector sync -once, which sync -verify
// confirms. The token is in no output: the daemon's, the commands', the
// metrics.
func TestHTTPSyncThroughFailures(t *testing.T) {
	bin := buildReceiver(t)
	l := labtest.New(t)
	const (
		listen  = "127.0.0.1:18080"
		metrics = "127.0.0.1:9986"
		token   = "lab-token-7f3a9c2e51d8"
		host    = "lab-host"
	)
	r := startReceiver(t, l, bin, listen, token)
	db := history(t)
	syncArgs := []string{"-sqlite-path", db, "-sync-http-url", "http://" + listen + "/ingest", "-sync-http-token", token,
		"-sync-http-tables", "minute,hourly,daily", "-host-id", host}
	args := append([]string{"-flush-interval", "1s", "-live-interval", "0", "-reverse-dns", "0",
		"-sync-interval", "1s", "-sync-http-timeout", "2s", "-http-listen", metrics}, syncArgs...)

	stopTraffic := labtest.SteadyTraffic(t, l, 200*time.Millisecond)
	first := labtest.StartDaemon(t, l, selfexec.Collector(), args...)
	time.Sleep(3 * time.Second)

	release := r.lockDatabase() // the receiver answers 500
	time.Sleep(4 * time.Second)
	release()
	time.Sleep(3 * time.Second)

	r.pause() // the receiver takes no answer past the timeout
	time.Sleep(5 * time.Second)
	r.resume()
	time.Sleep(3 * time.Second)

	// A batch in flight, unread at the stopped receiver, when the
	// daemon is killed: the receiver can still store it once continued;
	// the cursor has not moved, so the next daemon sends it again.
	r.pause()
	r.waitInFlight()
	first.Kill()
	r.resume()

	second := labtest.StartDaemon(t, l, selfexec.Collector(), args...)
	time.Sleep(2 * time.Second)
	r.restart(3 * time.Second) // killed, nobody listening, then back
	time.Sleep(4 * time.Second)
	scraped := scrape(t, l, metrics)
	stopTraffic()
	if err := second.Stop(); err != nil {
		t.Fatal(err)
	}

	same := func() {
		t.Helper()
		for _, tbl := range []store.Table{store.Minutes, store.Hours, store.Days} {
			sameRows(t, readRows(t, db, "FROM "+tbl.String()), r.rows(host, tbl), tbl)
		}
	}
	same()

	collector := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("ip", append([]string{"netns", "exec", l.HostNS, selfexec.Collector()}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("collector %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	once := collector(append([]string{"sync", "-once", "-config", os.DevNull}, syncArgs...)...)
	verified := collector(append([]string{"sync", "-verify", "-config", os.DevNull}, syncArgs...)...)
	if !strings.Contains(verified, "agree") {
		t.Errorf("collector sync -verify does not say the rows agree:\n%s", verified)
	}
	same()

	logs := second.Output()
	for _, want := range []string{"answered 500", "deadline exceeded", "connection refused", "syncing to the HTTP endpoint again"} {
		if !strings.Contains(first.Output()+logs, want) {
			t.Errorf("the daemons did not log %q:\n%s\n%s", want, first.Output(), logs)
		}
	}
	if !strings.Contains(scraped, `collector_sync_sent_rows_total{target="http"}`) {
		t.Errorf("no HTTP sync metrics:\n%s", scraped)
	}
	for name, output := range map[string]string{"the first daemon": first.Output(), "the second daemon": logs,
		"sync -once": once, "sync -verify": verified, "/metrics": scraped} {
		if strings.Contains(output, token) {
			t.Errorf("the token is in the output of %s:\n%s", name, output)
		}
	}
	t.Logf("sync -verify: %s", strings.TrimSpace(verified))

	// A row the receiver holds changed behind the sync's back: verify
	// finds it.
	r.plant(t, store.Hours)
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.HostNS, selfexec.Collector(), "sync", "-verify", "-config", os.DevNull}, syncArgs...)...)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "traffic_hourly of host lab-host") || strings.Contains(string(out), "traffic_minute of host") {
		t.Errorf("collector sync -verify of a planted hourly value: %v\n%s", err, out)
	}
}

// history writes three days of traffic of a few clients into a new
// database, as a host that ran before the HTTP sync was set up, so that
// the hourly and daily tables have rows to send; it returns its path.
func history(t *testing.T) string {
	now := time.Now()
	start := now.Add(-72 * time.Hour).Truncate(time.Hour)
	var periods []traffic.Period
	for i := 0; start.Add(time.Duration(i) * 20 * time.Minute).Before(now.Add(-time.Hour)); i++ {
		var samples []traffic.Sample
		for c := range 3 {
			samples = append(samples, traffic.Sample{Client: traffic.ClientOf(netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + c)})),
				Traffic: dbtest.Seeded(uint64(i*3 + c))})
		}
		periods = append(periods, storetest.Minute(start.Add(time.Duration(i)*20*time.Minute), samples...))
	}
	return storetest.Fill(t, periods, now)
}

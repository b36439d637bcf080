package peers

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/dbtest"
	"github.com/back2basic/collector/internal/testkit/hostdtest"
	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/internal/testkit/selfexec"
	"github.com/back2basic/collector/lab"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

const (
	password = "lab-hostd-password"
	// hostdListen is where "hostd" answers in the lab's host namespace,
	// and httpListen the daemon's own HTTP server.
	hostdListen = "127.0.0.1:9980"
	httpListen  = "127.0.0.1:9986"
)

// key is a row of a minute, hour or day table: its start and client.
type key struct {
	at int64
	ip string
}

// TestPeersAndRoles runs the daemon against a server answering as hostd
// does, whose syncer peers change from one minute to the next, while
// real traffic flows: renters on siamux and QUIC only, syncer peers on
// consensus only, one client on both. What the database holds of the
// peers is what the server listed, minute by minute and in the rollups;
// each client's role, per minute (export), over the span (report by
// client as CSV, by role as JSON) and through the API's filter, is the one
// worked out here by hand from the server's answers and the traffic rows.
func TestPeersAndRoles(t *testing.T) {
	l := labtest.New(t)
	c := l.ClientAddrs // 10.77.0.2-4, fd77::2-3
	renter, both := c[0], c[4]
	syncers := []netip.Addr{c[1], c[2], c[3]}
	ln, err := l.ListenTCP(l.HostNS, netip.MustParseAddrPort(hostdListen))
	if err != nil {
		t.Fatal(err)
	}
	srv := hostdtest.StartOn(t, ln, password, hostdtest.V2_10_2)
	peer := func(a netip.Addr, port uint16, inbound bool) hostdtest.Peer {
		return hostdtest.Peer{Address: netip.AddrPortFrom(a, port).String(), Inbound: inbound}
	}
	// One list a minute: inbound peers connected from a port of their
	// own, outbound ones were dialled at 9981; one is listed both ways,
	// one by host name, and the renter turns up as a peer at the end.
	lists := [][]hostdtest.Peer{
		{peer(c[1], 40001, true), peer(c[3], 9981, false), {Address: "node.example:9981"}},
		{peer(c[1], 40002, true), peer(c[1], 9981, false), peer(c[2], 40003, true), peer(both, 9981, false)},
		{peer(c[2], 9981, false), peer(renter, 40004, true)},
	}
	srv.SetPeers(lists[0]...)

	db := filepath.Join(t.TempDir(), "collector.db")
	start := time.Now()
	d := labtest.StartDaemon(t, l, selfexec.Collector(), "-sqlite-path", db, "-flush-interval", "1s", "-live-interval", "0",
		"-reverse-dns", "0", "-http-listen", httpListen, "-log-level", "debug",
		"-hostd-api-url", "http://"+hostdListen+"/api", "-hostd-api-password", password)
	stopTraffic := flow(t, l,
		lab.Spec{Ports: traffic.Ports{Siamux: []uint16{9984}, QUIC: []uint16{9984}}, Clients: []netip.Addr{renter, both}, OtherTCP: 8081, OtherUDP: 5354},
		lab.Spec{Ports: traffic.Ports{Consensus: []uint16{9981}}, Clients: append(slices.Clone(syncers), both), OtherTCP: 8082, OtherUDP: 5355})
	// Each list is listed once: it changes right after a sample, the
	// next sample being a minute later.
	for i := range lists {
		waitListed(t, srv, i+1)
		if i+1 < len(lists) {
			srv.SetPeers(lists[i+1]...)
		}
	}
	stopTraffic()
	time.Sleep(2500 * time.Millisecond) // two flushes: everything counted is stored
	listed := srv.PeersListed()
	if len(listed) != len(lists) {
		t.Fatalf("%d samples, want %d", len(listed), len(lists))
	}

	// The peers of each minute are exactly those the server listed in
	// it; the name is logged, not stored.
	want := peersByMinute(t, listed)
	sqlDB := labtest.OpenDB(t, db)
	if got := readPeers(t, sqlDB, "peers_minute"); !maps.Equal(got, want) {
		t.Errorf("peers_minute holds %v, the server listed %v", got, want)
	}
	if out := d.Output(); !strings.Contains(out, "hostd lists syncer peers by host name") || !strings.Contains(out, "node.example:9981") {
		t.Errorf("the peer listed by name was not logged:\n%s", out)
	}

	// Roles per minute row, from the traffic rows and the peers.
	rows := readTraffic(t, sqlDB, "traffic_minute")
	// The minutes show renters, peers each way, and peers that rent.
	checkRowRoles(t, rows, want, exportRoles(t, db, "minute"),
		"renter", "peer-in+consensus", "peer-out+consensus", "peer-in+peer-out+consensus", "peer-out+consensus+renter", "peer-in+renter")

	// Roles over the span, as report by client (CSV) and by role (JSON)
	// write them, and as the API filters them.
	since := start.Truncate(time.Minute)
	until := time.Now().Truncate(time.Minute).Add(time.Minute)
	spanRoles := rolesOver(rows, want)
	span := []string{"-since", since.Format(time.RFC3339), "-until", until.Format(time.RFC3339)}
	if got := csvRoles(t, collector(t, "report", db, append(span, "-format", "csv")...)); !maps.Equal(got, spanRoles) {
		t.Errorf("report -format csv: roles %v, want %v", got, spanRoles)
	}
	checkByRole(t, collector(t, "report", db, append(span, "-by", "role", "-format", "json")...), rows, spanRoles)
	checkAPIFilter(t, l, since, until, spanRoles)

	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(d.Output(), "hostd API unreachable") || strings.Contains(d.Output(), password) {
		t.Errorf("the daemon logged an outage, or the password:\n%s", d.Output())
	}

	// Rolled up as the daemon does once the hour and the day are over:
	// a client is a peer of an hour or day listed in any minute of it.
	rollUp(t, db)
	for _, r := range []struct {
		table string
		step  int64
	}{{"peers_hourly", 3600}, {"peers_daily", 86400}} {
		if got, want := readPeers(t, sqlDB, r.table), rollPeers(want, r.step); !maps.Equal(got, want) {
			t.Errorf("%s holds %v, want %v", r.table, got, want)
		}
	}
	checkRowRoles(t, readTraffic(t, sqlDB, "traffic_hourly"), rollPeers(want, 3600), exportRoles(t, db, "hour"))
}

// flow runs each spec's traffic, round after round, until the returned
// function stops it.
func flow(t *testing.T, l *lab.Lab, specs ...lab.Spec) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, len(specs))
	for _, s := range specs {
		s.Rounds, s.Interval = lab.Forever, 300*time.Millisecond
		go func() {
			_, err := l.Traffic(ctx, s)
			done <- err
		}()
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		for range specs {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitListed waits for the server's n-th answer of its peers: a sample a
// minute, the first within a minute of the start.
func waitListed(t *testing.T, srv *hostdtest.Server, n int) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); len(srv.PeersListed()) < n; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon asked for the peers %d times, want %d", len(srv.PeersListed()), n)
		}
	}
}

// peersByMinute is what the server's answers say of each minute: which
// addresses were peers, each way. Names cannot be told apart from
// addresses and are left out.
func peersByMinute(t *testing.T, listed []hostdtest.Listed) map[key]store.Peering {
	t.Helper()
	out := map[key]store.Peering{}
	for _, l := range listed {
		if s := l.At.Second(); s < 5 || s > 55 {
			t.Errorf("a sample at %s, near the end of a minute", l.At.Format(time.TimeOnly))
		}
		for _, p := range l.Peers {
			ap, err := netip.ParseAddrPort(p.Address)
			if err != nil {
				continue
			}
			k := key{l.At.Truncate(time.Minute).Unix(), ap.Addr().Unmap().String()}
			how := out[k]
			how.Inbound = how.Inbound || p.Inbound
			how.Outbound = how.Outbound || !p.Inbound
			out[k] = how
		}
	}
	return out
}

// rollPeers is peers of minutes gathered into periods of step seconds.
func rollPeers(peers map[key]store.Peering, step int64) map[key]store.Peering {
	out := map[key]store.Peering{}
	for k, p := range peers {
		k.at -= k.at % step
		how := out[k]
		how.Inbound, how.Outbound = how.Inbound || p.Inbound, how.Outbound || p.Outbound
		out[k] = how
	}
	return out
}

// readPeers returns the rows of a peer table.
func readPeers(t *testing.T, db *sql.DB, table string) map[key]store.Peering {
	t.Helper()
	out := map[key]store.Peering{}
	dbtest.ScanPeers(t, db, table, func(at int64, ip string, inbound, outbound bool) {
		out[key{at, ip}] = store.Peering{Inbound: inbound, Outbound: outbound}
	})
	return out
}

// moved is what a row of a traffic table says a client did: its bytes of
// consensus and of RHP (siamux and QUIC).
type moved struct {
	consensus, rhp, bytes uint64
}

// readTraffic returns the rows of a traffic table, with the columns
// users query.
func readTraffic(t *testing.T, db *sql.DB, table string) map[key]moved {
	t.Helper()
	rows, err := db.Query(`SELECT timestamp, ip, consensus_up + consensus_down, siamux_up + siamux_down + quic_up + quic_down FROM ` + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[key]moved{}
	for rows.Next() {
		var k key
		var m moved
		if err := rows.Scan(&k.at, &k.ip, &m.consensus, &m.rhp); err != nil {
			t.Fatal(err)
		}
		m.bytes = m.consensus + m.rhp
		out[k] = m
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s holds no rows", table)
	}
	return out
}

// roleOf is the README's role: the peer tags, then what was moved.
func roleOf(ip string, how store.Peering, m moved) string {
	if ip == "other" {
		return "other"
	}
	var tags []string
	for _, tag := range []struct {
		name string
		on   bool
	}{{"peer-in", how.Inbound}, {"peer-out", how.Outbound}, {"consensus", m.consensus > 0}, {"renter", m.rhp > 0}} {
		if tag.on {
			tags = append(tags, tag.name)
		}
	}
	return strings.Join(tags, "+")
}

// checkRowRoles checks the role of each row against roleOf, and that
// the roles of mustSee are among them.
func checkRowRoles(t *testing.T, rows map[key]moved, peers map[key]store.Peering, got map[key]string, mustSee ...string) {
	t.Helper()
	seen := map[string]bool{}
	for k, m := range rows {
		want := roleOf(k.ip, peers[k], m)
		if got[k] != want {
			t.Errorf("row %s at %s: role %q, want %q", k.ip, time.Unix(k.at, 0).Format(time.TimeOnly), got[k], want)
		}
		seen[want] = true
	}
	if len(got) != len(rows) {
		t.Errorf("%d rows exported, the table holds %d", len(got), len(rows))
	}
	for _, role := range mustSee {
		if !seen[role] {
			t.Errorf("no row has the role %s: %v", role, seen)
		}
	}
}

// rolesOver is each client's role over all of rows: a peer each way it
// was listed in any minute, and what it moved in all.
func rolesOver(rows map[key]moved, peers map[key]store.Peering) map[string]string {
	hows, sums := map[string]store.Peering{}, map[string]moved{}
	for k, p := range peers {
		how := hows[k.ip]
		how.Inbound, how.Outbound = how.Inbound || p.Inbound, how.Outbound || p.Outbound
		hows[k.ip] = how
	}
	for k, m := range rows {
		sum := sums[k.ip]
		sum.consensus, sum.rhp, sum.bytes = sum.consensus+m.consensus, sum.rhp+m.rhp, sum.bytes+m.bytes
		sums[k.ip] = sum
	}
	out := map[string]string{}
	for ip, m := range sums {
		out[ip] = roleOf(ip, hows[ip], m)
	}
	return out
}

// collector runs the collector command cmd on db with args and returns
// its output.
func collector(t *testing.T, cmd, db string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(selfexec.Collector(), append([]string{cmd, "-config", os.DevNull, "-sqlite-path", db}, args...)...).Output()
	if err != nil {
		t.Fatalf("collector %s %v: %v", cmd, args, err)
	}
	return out
}

// exportRoles returns the role of each row collector export writes of
// table.
func exportRoles(t *testing.T, db, table string) map[key]string {
	t.Helper()
	out := map[key]string{}
	lines := bufio.NewScanner(bytes.NewReader(collector(t, "export", db, "-table", table, "-format", "jsonl")))
	for lines.Scan() {
		var r struct {
			Timestamp int64  `json:"timestamp"`
			IP        string `json:"ip"`
			Role      string `json:"role"`
		}
		if err := json.Unmarshal(lines.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		out[key{r.Timestamp, r.IP}] = r.Role
	}
	return out
}

// csvRoles reads the role of each client of a report by client in CSV.
func csvRoles(t *testing.T, out []byte) map[string]string {
	t.Helper()
	records, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) == 0 || !slices.Equal(records[0][:3], []string{"ip", "dns", "role"}) {
		t.Fatalf("report by client, CSV: header %v", records)
	}
	roles := map[string]string{}
	for _, r := range records[1:] {
		roles[r[0]] = r[2]
	}
	return roles
}

// checkByRole checks a report by role in JSON: per role, the clients
// that have it over the span, and their bytes.
func checkByRole(t *testing.T, out []byte, rows map[key]moved, roles map[string]string) {
	t.Helper()
	type sum struct{ Clients, Bytes uint64 }
	want := map[string]sum{}
	for k, m := range rows {
		s := want[roles[k.ip]]
		s.Bytes += m.bytes
		want[roles[k.ip]] = s
	}
	for _, role := range roles {
		s := want[role]
		s.Clients++
		want[role] = s
	}
	var doc struct {
		By   string `json:"by"`
		Rows []struct {
			Role string `json:"role"`
			sum
		} `json:"rows"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	got := map[string]sum{}
	for _, r := range doc.Rows {
		got[r.Role] = r.sum
	}
	if doc.By != "role" || !maps.Equal(got, want) {
		t.Errorf("report -by role: %v, by hand %v", got, want)
	}
}

// checkAPIFilter asks the daemon's API for the clients of the span that
// are a renter listed as an inbound peer or an outbound peer of
// consensus, and checks them by hand.
func checkAPIFilter(t *testing.T, l *lab.Lab, since, until time.Time, roles map[string]string) {
	t.Helper()
	filter := []string{"peer-in+renter", "peer-out+consensus"}
	q := url.Values{"since": {since.Format(time.RFC3339)}, "until": {until.Format(time.RFC3339)}, "role": {strings.Join(filter, ",")}}
	client := &http.Client{Transport: l.HTTPTransport(l.HostNS), Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + httpListen + "/api/v1/report?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("role filter: %d %v\n%s", resp.StatusCode, err, body)
	}
	var doc struct {
		Rows []struct {
			IP   string `json:"ip"`
			Role string `json:"role"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	got, want := map[string]string{}, map[string]string{}
	for _, r := range doc.Rows {
		got[r.IP] = r.Role
	}
	for ip, role := range roles {
		if slices.Contains(filter, role) {
			want[ip] = role
		}
	}
	if len(want) == 0 || !maps.Equal(got, want) {
		t.Errorf("role=%s: %v, by hand %v", q.Get("role"), got, want)
	}
}

// rollUp rolls the database's minutes up into hours and days, as the
// daemon's flush does once they are over: a flush of nothing a day
// later.
func rollUp(t *testing.T, db string) {
	t.Helper()
	later := time.Now().Add(48 * time.Hour)
	st, err := store.Open(db, store.Options{Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return later }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Consume(t.Context(), traffic.Period{Start: later.Add(-time.Minute), End: later}); err != nil {
		t.Fatal(err)
	}
}

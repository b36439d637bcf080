package httpsync

import (
	"bufio"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/lab"
	"github.com/back2basic/collector/store"
)

// receiverPackage is the example receiver the tests run.
const receiverPackage = "github.com/back2basic/collector/contrib/http-receiver"

// buildReceiver builds the example receiver and returns its path. It
// needs the go command: without it the test skips, but fails in CI.
func buildReceiver(tb testing.TB) string {
	tb.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("the go command is needed to build %s: %v", receiverPackage, err)
		}
		tb.Skipf("no go command to build %s", receiverPackage)
	}
	bin := filepath.Join(tb.TempDir(), "http-receiver")
	out, err := exec.Command(goCmd, "build", "-o", bin, receiverPackage).CombinedOutput()
	if err != nil {
		tb.Fatalf("go build %s: %v\n%s", receiverPackage, err, out)
	}
	return bin
}

// receiver is the example receiver running as a process in the lab's
// host namespace, where the daemon reaches it on loopback.
type receiver struct {
	tb      testing.TB
	lab     *lab.Lab
	bin, db string
	listen  string
	token   string
	cmd     *exec.Cmd
	output  *os.File
}

// startReceiver runs the receiver at listen with token, storing into a
// new file, and stops it when tb ends.
func startReceiver(tb testing.TB, l *lab.Lab, bin, listen, token string) *receiver {
	tb.Helper()
	dir := tb.TempDir()
	out, err := os.Create(filepath.Join(dir, "receiver.log"))
	if err != nil {
		tb.Fatal(err)
	}
	r := &receiver{tb: tb, lab: l, bin: bin, db: filepath.Join(dir, "received.db"), listen: listen, token: token, output: out}
	tb.Cleanup(func() {
		r.kill()
		out.Close()
		if tb.Failed() {
			b, _ := os.ReadFile(out.Name())
			tb.Logf("receiver output:\n%s", b)
		}
	})
	r.start()
	return r
}

// start runs the receiver and waits until it takes connections.
func (r *receiver) start() {
	r.tb.Helper()
	r.cmd = exec.Command("ip", "netns", "exec", r.lab.HostNS, r.bin, "-listen", r.listen, "-db", r.db)
	r.cmd.Env = []string{"RECEIVER_TOKEN=" + r.token}
	r.cmd.Stdout, r.cmd.Stderr = r.output, r.output
	if err := r.cmd.Start(); err != nil {
		r.tb.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		err := r.lab.Do(r.lab.HostNS, func() error {
			c, err := net.Dial("tcp", r.listen)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			r.tb.Fatalf("the receiver does not take connections at %s: %v", r.listen, err)
		}
	}
}

// kill ends the receiver with SIGKILL, if it runs.
func (r *receiver) kill() {
	if r.cmd != nil {
		r.cmd.Process.Signal(syscall.SIGCONT)
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// restart kills the receiver and starts it again on the same file, after
// down, in which the daemon finds nobody listening.
func (r *receiver) restart(down time.Duration) {
	r.tb.Helper()
	r.kill()
	time.Sleep(down)
	r.start()
}

// pause stops the receiver (SIGSTOP): connections are still accepted by
// the kernel, but nothing answers.
func (r *receiver) pause() { r.signal(syscall.SIGSTOP) }

// waitInFlight waits, up to 10 s, until a request waits unread at the
// paused receiver: a connection to it whose receive queue holds bytes.
func (r *receiver) waitInFlight() {
	r.tb.Helper()
	_, port, _ := net.SplitHostPort(r.listen)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		// Lines of State-less ss: Recv-Q Send-Q Local Peer.
		out := labtest.InHost(r.tb, r.lab, "ss", "-tnH", "state", "established", "( sport = :"+port+" )")
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if fields := strings.Fields(line); len(fields) >= 2 && fields[0] != "0" {
				r.tb.Logf("a request waits at the paused receiver: %s", line)
				return
			}
		}
	}
	r.tb.Fatal("no request reached the paused receiver within 10s")
}

// resume continues a paused receiver.
func (r *receiver) resume() { r.signal(syscall.SIGCONT) }

func (r *receiver) signal(sig syscall.Signal) {
	r.tb.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.tb.Fatal(err)
	}
}

// lockDatabase takes the receiver's database's write lock (once a write
// of the receiver's has ended), so that its upserts fail and it answers
// 500, until the returned function releases it.
func (r *receiver) lockDatabase() (release func()) {
	r.tb.Helper()
	db, err := sql.Open("sqlite", "file:"+r.db+"?_pragma=busy_timeout(10000)")
	if err != nil {
		r.tb.Fatal(err)
	}
	conn, err := db.Conn(r.tb.Context())
	if err == nil {
		_, err = conn.ExecContext(r.tb.Context(), "BEGIN IMMEDIATE")
	}
	if err != nil {
		db.Close()
		r.tb.Fatal(err)
	}
	return func() {
		conn.ExecContext(r.tb.Context(), "ROLLBACK")
		conn.Close()
		db.Close()
	}
}

// plant adds a byte to one row the receiver holds of table t.
func (r *receiver) plant(tb testing.TB, t store.Table) {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+r.db+"?_pragma=busy_timeout(10000)")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec("UPDATE rows SET siamux_down = siamux_down + 1 WHERE rowid = (SELECT rowid FROM rows WHERE tbl = ? ORDER BY timestamp LIMIT 1 OFFSET 5)", t.String())
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		tb.Fatalf("plant a value in %s: %v (%d rows)", t, err, n)
	}
}

// rows reads what the receiver holds of host's table t, with the column
// names users query.
func (r *receiver) rows(host string, t store.Table) map[string]string {
	r.tb.Helper()
	return readRows(r.tb, r.db, "FROM rows WHERE host = '"+host+"' AND tbl = '"+t.String()+"'")
}

// readRows reads the rows of the SQLite file at path that from selects,
// each as its counters spelled out, by time and address.
func readRows(tb testing.TB, path, from string) map[string]string {
	tb.Helper()
	db := labtest.OpenDB(tb, path)
	cols := strings.Join(store.CounterNames(), " || ',' || ")
	rows, err := db.Query("SELECT timestamp || ' ' || ip, " + cols + " " + from)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var key, values string
		if err := rows.Scan(&key, &values); err != nil {
			tb.Fatal(err)
		}
		out[key] = values
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// scrape returns the daemon's /metrics, read in the lab's host namespace.
func scrape(tb testing.TB, l *lab.Lab, addr string) string {
	tb.Helper()
	var conn net.Conn
	if err := l.Do(l.HostNS, func() (err error) { conn, err = net.Dial("tcp", addr); return err }); err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
	req.Close = true
	if err := req.Write(conn); err != nil {
		tb.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := bufio.NewReader(resp.Body).WriteTo(&b); err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET /metrics: %s\n%s", resp.Status, b.String())
	}
	return b.String()
}

// sameRows fails tb unless the receiver holds exactly the local rows of
// table t, row by row.
func sameRows(tb testing.TB, local, received map[string]string, t store.Table) {
	tb.Helper()
	diffs := 0
	for key, want := range local {
		if got, ok := received[key]; !ok || got != want {
			if diffs++; diffs <= 10 {
				tb.Errorf("%s %s: received %q, local %q", t, key, got, want)
			}
		}
	}
	for key, got := range received {
		if _, ok := local[key]; !ok {
			if diffs++; diffs <= 10 {
				tb.Errorf("%s %s: received %q, not a local row", t, key, got)
			}
		}
	}
	if diffs > 10 {
		tb.Errorf("%s: %d rows differ in all", t, diffs)
	}
	if len(local) == 0 {
		tb.Errorf("%s: no local rows to compare", t)
	}
	tb.Logf("%s: %d local rows, %d received, %s", t, len(local), len(received), fmt.Sprint(diffs, " differ"))
}

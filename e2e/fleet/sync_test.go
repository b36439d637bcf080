package fleet

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/internal/testkit/pgtest"
	"github.com/back2basic/collector/internal/testkit/selfexec"
	"github.com/back2basic/collector/pgsync"
	"github.com/back2basic/collector/store"
)

// TestSyncThroughOutages copies real lab traffic to a real PostgreSQL
// while the server is stopped, restarted and frozen and the daemon is
// killed with SIGKILL and started again; once the daemon has stopped,
// having sent what its last flush stored, the central tables equal the
// local ones row by row, and still do after collector sync -once; the
// password was never written anywhere.
func TestSyncThroughOutages(t *testing.T) {
	pg := pgtest.New(t)
	pg.CreateDatabase("fleet")
	// The daemon runs in the lab's namespace: it reaches the server
	// through its unix socket.
	url := pg.SocketURL("fleet")
	l := labtest.New(t)
	db := filepath.Join(t.TempDir(), "collector.db")
	args := []string{"-sqlite-path", db, "-flush-interval", "1s", "-live-interval", "0", "-reverse-dns", "0",
		"-sync-postgres-url", url, "-sync-interval", "1s", "-host-id", "lab-host"}

	stopTraffic := labtest.SteadyTraffic(t, l, 200*time.Millisecond)
	first := labtest.StartDaemon(t, l, selfexec.Collector(), args...)
	time.Sleep(3 * time.Second)
	pg.Stop()
	time.Sleep(3 * time.Second) // rows wait in the local database
	first.Kill()
	second := labtest.StartDaemon(t, l, selfexec.Collector(), args...) // starts with the server away
	time.Sleep(2 * time.Second)
	pg.Start()
	time.Sleep(3 * time.Second)
	pg.Pause() // a server that takes no answer for longer than a flush
	time.Sleep(3 * time.Second)
	pg.Resume()
	time.Sleep(3 * time.Second)
	stopTraffic()
	if err := second.Stop(); err != nil {
		t.Fatal(err)
	}
	verify(t, db, url)

	once := exec.Command(selfexec.Collector(), "sync", "-once", "-config", os.DevNull, "-sqlite-path", db,
		"-sync-postgres-url", url, "-host-id", "lab-host")
	out, err := once.CombinedOutput()
	if err != nil {
		t.Fatalf("collector sync -once: %v\n%s", err, out)
	}
	for _, output := range []string{first.Output(), second.Output(), string(out)} {
		if strings.Contains(output, pg.Password()) {
			t.Errorf("the password was logged:\n%s", output)
		}
	}
	if !strings.Contains(second.Output(), "PostgreSQL") {
		t.Errorf("the outage was not logged:\n%s", second.Output())
	}

	verify(t, db, url)
	var rows int
	if err := pg.Conn("fleet").QueryRow(t.Context(), "SELECT count(*) FROM traffic_minute WHERE host = 'lab-host'").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows == 0 {
		t.Fatal("no minute rows reached PostgreSQL")
	}
	t.Logf("%d minute rows in PostgreSQL equal the local ones", rows)
}

// verify fails unless the central tables at url hold exactly the rows of
// the database at db.
func verify(t *testing.T, db, url string) {
	t.Helper()
	st, err := store.OpenReadOnly(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := pgsync.New(st, pgsync.Config{URL: url, HostID: "lab-host"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Verify(t.Context()); err != nil {
		t.Fatal(err)
	}
}

package pgsync

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/back2basic/collector/internal/testkit/pgtest"
	"github.com/back2basic/collector/internal/testkit/syncbuf"
)

// resendLine is what the journal says when a host sends its rows again.
const resendLine = "sending every row within local retention again"

// A central database dropped and created again, while the daemon runs,
// gets every row within local retention again: it equals the local one
// row by row after the next sync.
func TestCentralRebuiltGetsEverythingAgain(t *testing.T) {
	server := pgtest.New(t)
	url := server.CreateDatabase("fleet")
	h := newHistory(t)
	var log syncbuf.Buffer
	r := run(newSyncer(t, h.st, testConfig(url, "host-a", &log)))
	defer func() { r.stop(t) }()
	for range 40 {
		h.step(t)
		r.AfterFlush()
	}
	r.waitCaughtUp(t)
	verify(t, r.Syncer)
	if strings.Contains(log.String(), resendLine) {
		t.Fatalf("rows sent again before the database was rebuilt:\n%s", log.String())
	}

	server.DropDatabase("fleet")
	server.CreateDatabase("fleet")
	h.step(t)
	r.AfterFlush()
	r.waitCaughtUp(t)
	verify(t, r.Syncer)
	checkResent(t, log.String(), "is another one than the sync cursor was made for")
}

// A central database restored from an older dump has its old identity
// back, with fewer rows: the next sync finds it behind the cursor and
// sends every row within local retention again.
func TestCentralRestoredGetsEverythingAgain(t *testing.T) {
	server := pgtest.New(t)
	url := server.CreateDatabase("fleet")
	h := newHistory(t)
	var log syncbuf.Buffer
	cfg := testConfig(url, "host-a", &log)
	var dump string
	for step := 1; step <= 60; step++ {
		h.step(t)
		if step%10 == 0 {
			if _, err := Once(t.Context(), h.path, cfg); err != nil {
				t.Fatal(err)
			}
		}
		if step == 30 {
			dump = server.Dump("fleet")
		}
	}
	verify(t, newSyncer(t, h.st, cfg))

	server.Restore("fleet", dump)
	if err := newSyncer(t, h.st, cfg).Verify(t.Context()); err == nil {
		t.Fatal("the restored database equals the local one: the dump is not older")
	}
	h.step(t)
	if _, err := Once(t.Context(), h.path, cfg); err != nil {
		t.Fatal(err)
	}
	verify(t, newSyncer(t, h.st, cfg))
	checkResent(t, log.String(), "short of the sync cursor's")
}

// checkResent fails t unless logs say once that the rows went again, and
// why.
func checkResent(t *testing.T, logs, why string) {
	t.Helper()
	if n := strings.Count(logs, resendLine); n != 1 {
		t.Errorf("%d lines say the rows go again, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs, why) {
		t.Errorf("the log does not say why the rows go again (%q):\n%s", why, logs)
	}
}

// A second machine given the same HOST_ID is refused with a line naming
// both, and the first one's rows stay as they were; releasing the claim,
// as the line says, lets the second one in.
func TestHostIDClaimedByAnotherMachine(t *testing.T) {
	server := pgtest.New(t)
	url := server.CreateDatabase("fleet")
	var log syncbuf.Buffer
	cfg := testConfig(url, "host-a", &log)
	a, b := steppedHistory(t, 30), steppedHistory(t, 31)
	sa := newSyncer(t, a.st, cfg)
	if _, err := sa.SyncOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	sb := newSyncer(t, b.st, cfg)
	_, err := sb.SyncOnce(t.Context())
	checkClaimed(t, err, sa, sb, "")
	verify(t, sa)

	server.Exec("fleet", "UPDATE collector_hosts SET claim = '' WHERE host = 'host-a'")
	if _, err := Once(t.Context(), b.path, cfg); err != nil {
		t.Fatalf("after the claim was released: %v", err)
	}
	a.step(t)
	if _, err := sa.SyncOnce(t.Context()); !errors.Is(err, errClaimed) {
		t.Errorf("the first machine, after the second claimed the id: %v", err)
	}
}

// Cloned VMs share /etc/machine-id and a copy of the database: after the
// copy, the first to send rows keeps the id and the other is refused.
func TestClonedMachineRefused(t *testing.T) {
	server := pgtest.New(t)
	url := server.CreateDatabase("fleet")
	var log syncbuf.Buffer
	cfg := testConfig(url, "host-a", &log)
	a := steppedHistory(t, 30)
	if _, err := Once(t.Context(), a.path, cfg); err != nil {
		t.Fatal(err)
	}
	a.st.Close() // writes the whole database to its file
	b := newHistory(t)
	b.st.Close()
	copyFile(t, a.path, b.path)
	a.open(t)
	b.open(t)
	b.now, b.steps = a.now, a.steps
	a.step(t)
	b.step(t)
	b.step(t)

	sa, sb := newSyncer(t, a.st, cfg), newSyncer(t, b.st, cfg)
	if _, err := sa.SyncOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, err := sb.SyncOnce(t.Context())
	checkClaimed(t, err, sa, sb, "with a copy of that one's database")
	a.step(t)
	if _, err := sa.SyncOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	verify(t, sa)
}

// checkClaimed fails t unless err refuses b's sync on one line naming a
// and b, and saying more.
func checkClaimed(t *testing.T, err error, a, b *Syncer, more string) {
	t.Helper()
	if !errors.Is(err, errClaimed) {
		t.Fatalf("sync of a second machine with the same HOST_ID = %v, want it refused", err)
	}
	line := err.Error()
	installA, errA := a.install(t.Context())
	installB, errB := b.install(t.Context())
	if err := errors.Join(errA, errB); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`HOST_ID "host-a" is claimed by another machine`, "database " + installA, "database " + installB,
		"from 127.0.0.1", "UPDATE collector_hosts SET claim = '' WHERE host = 'host-a'", more} {
		if !strings.Contains(line, want) {
			t.Errorf("the refusal does not name %q:\n%s", want, line)
		}
	}
	if strings.Contains(line, "\n") {
		t.Errorf("the refusal takes more than a line:\n%s", line)
	}
}

// copyFile copies the file at from to to.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

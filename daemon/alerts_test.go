package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/config"
	"github.com/back2basic/collector/internal/testkit/syncbuf"
	"github.com/back2basic/collector/sdnotify"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// learnedLine is what the journal says once the alerts judge spikes.
const learnedLine = "judging spikes from now on"

// The daemon is ready before the alerts have read a week of history of 30
// busy clients, and they say in the journal when they have.
func TestReadyBeforeTheAlertsLearn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "collector.db")
	writeBusyWeek(t, path, time.Now(), 30)
	notify, err := sdnotify.Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	t.Setenv("NOTIFY_SOCKET", strings.TrimPrefix(notify.Env(), "NOTIFY_SOCKET="))

	var journal syncbuf.Buffer
	c := &collector{
		cfg: &config.Config{SQLitePath: path, FlushInterval: time.Minute, SpikeAlerts: true},
		log: slog.New(slog.NewTextHandler(&journal, nil)),
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, c.log,
			Service{Name: "database", Start: c.openStore, Stop: func() error { return c.store.Close() }},
			Service{Name: "alerts", Start: c.newAlerts, Run: c.runAlerts})
	}()
	wait, stop := context.WithTimeout(t.Context(), time.Minute)
	defer stop()
	if err := notify.Wait(wait, sdnotify.Ready); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(journal.String(), learnedLine) {
		t.Fatalf("the alerts learned their history before READY:\n%s", journal.String())
	}
	for !strings.Contains(journal.String(), learnedLine) {
		select {
		case <-wait.Done():
			t.Fatalf("the alerts never said they judge spikes:\n%s", journal.String())
		case err := <-done:
			t.Fatalf("the daemon stopped (%v) before the alerts said they judge spikes:\n%s", err, journal.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// writeBusyWeek writes the week of minutes before now into the database at
// path: clients moving consensus traffic every minute.
func writeBusyWeek(t *testing.T, path string, now time.Time, clients int) {
	t.Helper()
	st, err := store.Open(path, store.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	end := now.Truncate(time.Hour)
	for hour := end.AddDate(0, 0, -7); hour.Before(end); hour = hour.Add(time.Hour) {
		rows := make([]traffic.Row, 0, 60*clients)
		for m := hour; m.Before(hour.Add(time.Hour)); m = m.Add(time.Minute) {
			for i := range clients {
				var tr traffic.Traffic
				tr[traffic.Consensus][traffic.Up] = traffic.Tally{Bytes: uint64(60_000 + i), Packets: 60}
				rows = append(rows, traffic.Row{Start: m, Client: traffic.ClientOf(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})), Traffic: tr})
			}
		}
		if err := st.Write(t.Context(), rows); err != nil {
			t.Fatal(err)
		}
	}
}

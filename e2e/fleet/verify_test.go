package fleet

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/dbtest"
	"github.com/back2basic/collector/internal/testkit/pgtest"
	"github.com/back2basic/collector/internal/testkit/selfexec"
	"github.com/back2basic/collector/internal/testkit/storetest"
	"github.com/back2basic/collector/traffic"
)

// collector sync -verify exits 0 when the central rows equal the local
// ones, and 1 with a line naming the row when one value planted in
// PostgreSQL differs.
func TestSyncVerifyFindsPlantedValue(t *testing.T) {
	pg := pgtest.New(t)
	url := pg.CreateDatabase("fleet")
	start := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	var periods []traffic.Period
	for i := range 90 {
		client := traffic.ClientOf(netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i%3)}))
		periods = append(periods, storetest.Minute(start.Add(time.Duration(i)*time.Minute),
			traffic.Sample{Client: client, Traffic: dbtest.Seeded(uint64(i))}))
	}
	db := storetest.Fill(t, periods, start.Add(90*time.Minute))
	collector := func(mode string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command(selfexec.Collector(), "sync", mode, "-config", os.DevNull, "-sqlite-path", db,
			"-sync-postgres-url", url, "-host-id", "verify-host")
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
	}
	if _, stderr, code := collector("-once"); code != 0 {
		t.Fatalf("collector sync -once exited %d:\n%s", code, stderr)
	}
	stdout, stderr, code := collector("-verify")
	if code != 0 || !strings.Contains(stdout, "rows of host verify-host agree") {
		t.Fatalf("collector sync -verify of equal rows exited %d:\n%s%s", code, stdout, stderr)
	}

	// One row, named by its key: a ctid is unique only within one of the
	// table's daily partitions, and the rows straddle UTC midnight when
	// the test runs just after it.
	var planted int64
	if err := pg.Conn("fleet").QueryRow(t.Context(), `UPDATE traffic_minute SET siamux_down = siamux_down + 1
WHERE (host, timestamp, ip) = (SELECT host, timestamp, ip FROM traffic_minute WHERE host = 'verify-host' ORDER BY timestamp DESC, ip LIMIT 1 OFFSET 17)
RETURNING siamux_down`).Scan(&planted); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = collector("-verify")
	t.Logf("collector sync -verify, one value planted:\n%s%s", stdout, stderr)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != 1 || len(lines) != 1 || !strings.HasPrefix(lines[0], "traffic_minute 192.0.2.") || !strings.HasSuffix(lines[0], fmt.Sprintf(": siamux_down central %d, local %d", planted, planted-1)) {
		t.Errorf("collector sync -verify with a planted value exited %d, want 1 and one line naming the row:\n%s", code, stdout)
	}
	if !strings.Contains(stderr, "1 rows of host verify-host differ") {
		t.Errorf("collector sync -verify does not count the difference:\n%s", stderr)
	}
}

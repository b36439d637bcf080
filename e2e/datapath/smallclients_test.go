package datapath

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/back2basic/collector/bpfgo"
	"github.com/back2basic/collector/internal/testkit/kerneltest"
	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/internal/testkit/selfexec"
	"github.com/back2basic/collector/lab"
	"github.com/back2basic/collector/traffic"
)

// TestSmallClientsKeepRows: at the default settings every client has
// exact rows of its own, however little it sent: here sources that each
// send a single frame (74 bytes over IPv4, 94 over IPv6) to the QUIC port,
// in every ingress mode. Stored equals the capture per client, class and
// direction, and nothing is stored as 'other'.
func TestSmallClientsKeepRows(t *testing.T) {
	kerneltest.RequireRoot(t)
	const sources = 8
	for _, xdp := range []bpfgo.XDPMode{bpfgo.XDPNative, bpfgo.XDPGeneric, bpfgo.XDPViaTC} {
		t.Run("xdp="+string(xdp), func(t *testing.T) {
			l := labtest.New(t)
			db := filepath.Join(t.TempDir(), "collector.db")
			d := labtest.StartDaemon(t, l, selfexec.Collector(), "-sqlite-path", db, "-flush-interval", "1s", "-live-interval", "0",
				"-reverse-dns", "0", "-xdp-mode", string(xdp))
			capture := labtest.Capture(t, l, traffic.DefaultPorts)
			// 14 bytes of Ethernet, 20 of IPv4, 8 of UDP and 32 of payload.
			err := l.Forge(lab.Forged{Frames: sources, Port: traffic.DefaultPorts.QUIC[0], Payload: 32, PerSecond: 1000})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(1500 * time.Millisecond) // past a flush
			counted, err := capture.Stop()
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Stop(); err != nil {
				t.Fatal(err)
			}
			if len(counted) != sources {
				t.Fatalf("the capture saw %d sources, want %d", len(counted), sources)
			}
			for addr, tr := range counted {
				if addr.Is4() && tr.Bytes() != 74 {
					t.Errorf("%s sent %d bytes, want one 74-byte frame", addr, tr.Bytes())
				}
			}
			labtest.AssertSame(t, labtest.Stored(t, db), counted)
		})
	}
}

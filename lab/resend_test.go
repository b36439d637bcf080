package lab

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/kerneltest"
)

// A request whose reply does not come is sent again, as a QUIC endpoint
// would after a loss, and counted: here the host ignores every first copy
// of a request, so each of three requests goes twice and all three are
// answered.
func TestPingUDPResendsLostRequests(t *testing.T) {
	kerneltest.RequireRoot(t)
	l, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	client := l.ClientAddrs[0]
	host := netip.AddrPortFrom(l.HostAddr(client), 9999)
	srv, err := l.ListenUDP(l.HostNS, host)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 64)
		for copies := 0; ; copies++ {
			_, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return // closed at the end of the test
			}
			if copies%2 == 1 {
				srv.WriteToUDPAddrPort(make([]byte, 20), from)
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var resent atomic.Uint64
	err = l.pingUDP(ctx, l.ClientNS, netip.AddrPortFrom(client, 0), host, 3, make([]byte, 10), 20, &resent)
	if err != nil || resent.Load() != 3 {
		t.Errorf("pingUDP: %v, %d requests sent again; want no error and 3", err, resent.Load())
	}
}

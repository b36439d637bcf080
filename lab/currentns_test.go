package lab_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/back2basic/collector/internal/testkit/kerneltest"
	"github.com/back2basic/collector/lab"
	"github.com/back2basic/collector/traffic"
)

// TestHostInCurrentNS builds a lab with its host side in the caller's own
// namespace. The caller here is a thread moved into a throwaway namespace
// first, so the machine's namespace is never touched: the lab must land in
// that thread's namespace, carry traffic, and leave it as it was.
func TestHostInCurrentNS(t *testing.T) {
	kerneltest.RequireRoot(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Never unlocked: the thread ends with this goroutine, so no
		// other goroutine is ever scheduled in the throwaway namespace.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		hostInCurrentNS(t)
	}()
	<-done
}

// hostInCurrentNS runs off the test's goroutine, so it reports with
// t.Error and returns instead of t.Fatal.
func hostInCurrentNS(t *testing.T) {
	t.Helper()
	var self unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &self); err != nil {
		t.Error(err)
		return
	}
	l, err := lab.New(lab.Options{HostInCurrentNS: true})
	if err != nil {
		t.Error(err)
		return
	}
	defer func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
		// The name is gone, the namespace (this thread's) is not, and
		// deleting the client namespace took the veth with it.
		if _, err := os.Stat(filepath.Join("/var/run/netns", l.HostNS)); !os.IsNotExist(err) {
			t.Errorf("the name %s is still there (%v)", l.HostNS, err)
		}
		// The kernel dismantles a deleted namespace in the background.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if _, err := net.InterfaceByName(l.HostIf); err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s is still there 5s after Close", l.HostIf)
				break
			}
		}
	}()
	var named unix.Stat_t
	if err := unix.Stat(filepath.Join("/var/run/netns", l.HostNS), &named); err != nil {
		t.Error(err)
		return
	}
	if named.Ino != self.Ino {
		t.Errorf("HostNS %s is netns inode %d, want the caller's %d", l.HostNS, named.Ino, self.Ino)
	}
	// Looked up on this thread, without Do: the veth is right here.
	ifc, err := net.InterfaceByName(l.HostIf)
	if err != nil {
		t.Errorf("the host end is not in the caller's namespace: %v", err)
		return
	}
	addrs, _ := ifc.Addrs()
	if !strings.Contains(addrsString(addrs), "10.77.0.1/24") {
		t.Errorf("%s has %v, want 10.77.0.1/24", l.HostIf, addrs)
	}

	c, err := l.Capture(traffic.DefaultPorts)
	if err != nil {
		t.Error(err)
		return
	}
	resent := retransmits(t, l)
	sent, err := l.Traffic(context.Background(), lab.Spec{Rounds: 1})
	got, cerr := c.Stop()
	if err != nil || cerr != nil {
		t.Errorf("traffic: %v; capture: %v", err, cerr)
		return
	}
	checkCapture(t, l, sent, got, c.Ignored(), retransmits(t, l)-resent)
}

func addrsString(addrs []net.Addr) string {
	var b strings.Builder
	for _, a := range addrs {
		b.WriteString(a.String() + " ")
	}
	return b.String()
}

package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestNotify(t *testing.T) {
	tests := []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"path socket", func(t *testing.T) string { return filepath.Join(t.TempDir(), "notify") }},
		// systemd itself hands out abstract sockets in containers.
		{"abstract socket", func(t *testing.T) string { return fmt.Sprintf("@collector-sdnotify-test-%d", os.Getpid()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := tt.addr(t)
			conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			t.Setenv("NOTIFY_SOCKET", addr)

			for _, state := range []string{Ready, Stopping} {
				if err := Notify(state); err != nil {
					t.Fatalf("Notify(%q): %v", state, err)
				}
				buf := make([]byte, 64)
				if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
					t.Fatal(err)
				}
				n, err := conn.Read(buf)
				if err != nil {
					t.Fatalf("read what Notify(%q) sent: %v", state, err)
				}
				if got := string(buf[:n]); got != state {
					t.Errorf("systemd would receive %q, want %q", got, state)
				}
			}
		})
	}
}

func TestNotifyOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := Notify(Ready); err != nil {
		t.Errorf("Notify with NOTIFY_SOCKET unset: %v, want a silent no-op", err)
	}
}

func TestNotifyNoListener(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone"))
	if err := Notify(Ready); err == nil {
		t.Error("Notify to a socket nobody listens on returned nil, want an error")
	}
}

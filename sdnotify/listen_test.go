package sdnotify

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listen starts a listener that is closed when the test ends and points
// Notify at it.
func listen(t *testing.T) *Listener {
	t.Helper()
	l, err := Listen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	path, ok := strings.CutPrefix(l.Env(), "NOTIFY_SOCKET=")
	if !ok || !filepath.IsAbs(path) {
		t.Fatalf("Env() = %q, want NOTIFY_SOCKET=/an/absolute/path", l.Env())
	}
	t.Setenv("NOTIFY_SOCKET", path)
	return l
}

func TestWaitForState(t *testing.T) {
	tests := []struct {
		name  string
		sent  []string
		ready bool
	}{
		{"ready", []string{Ready}, true},
		{"after other states", []string{"STATUS=loading", Stopping, Ready}, true},
		{"among other variables", []string{"STATUS=counting\n" + Ready + "\n"}, true},
		{"never ready", []string{"STATUS=loading", Stopping}, false},
		{"a prefix is not the state", []string{Ready + "0", "X" + Ready}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := listen(t)
			for _, state := range tt.sent {
				if err := Notify(state); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			err := l.Wait(ctx, Ready)
			if tt.ready && err != nil {
				t.Errorf("Wait after %q: %v, want the ready state found", tt.sent, err)
			}
			if !tt.ready && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Wait after %q: %v, want the context's deadline", tt.sent, err)
			}
		})
	}
}

func TestCloseEndsWait(t *testing.T) {
	l := listen(t)
	path := strings.TrimPrefix(l.Env(), "NOTIFY_SOCKET=")
	waited := make(chan error, 1)
	go func() { waited <- l.Wait(context.Background(), Ready) }()
	time.Sleep(50 * time.Millisecond) // let Wait block
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Wait on a closed listener: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait still blocked 5s after Close")
	}
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Errorf("Close left %s (%v)", filepath.Dir(path), err)
	}
}

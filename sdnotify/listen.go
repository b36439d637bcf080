package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Listener is systemd's end of $NOTIFY_SOCKET, for a program that starts
// the daemon itself and must know, as systemd knows of a Type=notify
// service, when it is ready: the demo and the tests.
type Listener struct {
	conn *net.UnixConn
	dir  string
}

// Listen creates the socket in a new temporary directory. It is a path,
// not an abstract name as systemd sometimes hands out: abstract sockets
// belong to a network namespace, and the daemon may run in another one,
// where a path still reaches this socket.
func Listen() (*Listener, error) {
	dir, err := os.MkdirTemp("", "collector-notify-")
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	addr := &net.UnixAddr{Name: filepath.Join(dir, "notify"), Net: "unixgram"}
	conn, err := net.ListenUnixgram("unixgram", addr)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	return &Listener{conn: conn, dir: dir}, nil
}

// Env is the variable that points the daemon at l: NOTIFY_SOCKET=path.
func (l *Listener) Env() string {
	return "NOTIFY_SOCKET=" + l.conn.LocalAddr().String()
}

// Wait reads notifications until one holds state, such as Ready. It fails
// when ctx is done first or l is closed.
func (l *Listener) Wait(ctx context.Context, state string) error {
	// A deadline in the past wakes the read below when ctx is done.
	stop := context.AfterFunc(ctx, func() { l.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 4096)
	for {
		n, err := l.conn.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("waiting for %s: %w", state, ctx.Err())
			}
			return fmt.Errorf("waiting for %s: %w", state, err)
		}
		// One datagram may set several variables, a line each.
		for line := range strings.Lines(string(buf[:n])) {
			if strings.TrimSuffix(line, "\n") == state {
				return nil
			}
		}
	}
}

// Close closes the socket and removes it with its directory; a Wait in
// progress returns.
func (l *Listener) Close() error {
	return errors.Join(l.conn.Close(), os.RemoveAll(l.dir))
}

// Package sdnotify tells systemd how a Type=notify service is doing, the
// way sd_notify(3) does: one datagram with a state such as READY=1 to the
// unix socket systemd names in $NOTIFY_SOCKET. systemd then reports the
// service started only once it really counts, and knows a slow shutdown is
// on its way rather than hung. Outside systemd the variable is unset and
// Notify does nothing, so the same binary runs by hand. The demo and the
// tests, which start the daemon themselves, take systemd's part with a
// Listener.
package sdnotify

import (
	"fmt"
	"net"
	"os"
)

// States the daemon sends; sd_notify(3) lists the others.
const (
	// Ready: startup is finished; for collector, every interface counts.
	Ready = "READY=1"
	// Stopping: shutdown has begun (the last drain and flush follow).
	Stopping = "STOPPING=1"
)

// Notify sends state to the socket named by $NOTIFY_SOCKET and returns nil
// without doing anything when the variable is unset. A name starting with
// '@' is an abstract socket; the net package maps the '@' itself.
func Notify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify systemd %s: %w", state, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify systemd %s: %w", state, err)
	}
	return nil
}

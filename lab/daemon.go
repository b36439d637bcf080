package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/back2basic/collector/sdnotify"
)

// Daemon is collector running as the daemon in a lab's host namespace:
// what the demo shows and what the end-to-end tests measure.
type Daemon struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has ended
	exitErr error         // how it ended; set before exited is closed
}

// startTimeout bounds a start: loading and verifying the programs takes
// some 20 s on a guest under software emulation (make test-kernels).
const startTimeout = 90 * time.Second

// stopTimeout bounds a stop: the last drain and flush.
const stopTimeout = 15 * time.Second

// StartDaemon runs `bin run` with args in the host namespace of l and
// returns once the daemon reports it is ready (READY=1 on $NOTIFY_SOCKET,
// which systemd waits for too): once it counts on every interface. It
// counts on l.HostIf unless args name other interfaces. The settings come
// from args alone: no env file, no inherited environment. A daemon that
// exits first, or is not ready within 90 s, is an error.
//
// The daemon's stdout and stderr go to out, or nowhere when out is nil. A
// file takes them without a copy in between, so every line the daemon
// wrote before it was ready is in out when StartDaemon returns.
func (l *Lab) StartDaemon(bin string, out *os.File, args ...string) (*Daemon, error) {
	notify, err := sdnotify.Listen()
	if err != nil {
		return nil, err
	}
	argv := append([]string{"netns", "exec", l.HostNS, bin, "run", "-config", os.DevNull, "-interface", l.HostIf}, args...)
	cmd := exec.Command("ip", argv...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", notify.Env()}
	if out != nil {
		cmd.Stdout, cmd.Stderr = out, out
	}
	if err := cmd.Start(); err != nil {
		notify.Close()
		return nil, fmt.Errorf("start collector in %s: %w", l.HostNS, err)
	}
	d := &Daemon{cmd: cmd, exited: make(chan struct{})}
	go func() {
		d.exitErr = cmd.Wait()
		// Only now: the daemon tells of its stop too, and would warn
		// that nobody listens.
		notify.Close()
		close(d.exited)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	err = notify.Wait(ctx, sdnotify.Ready)
	switch {
	case err == nil:
		return d, nil
	case errors.Is(err, net.ErrClosed): // the daemon ended, and the socket with it
		<-d.exited
		return nil, fmt.Errorf("collector exited before it was ready: %v", d.exitErr)
	}
	d.Stop()
	return nil, fmt.Errorf("collector was not ready within %v: %w", startTimeout, err)
}

// Stop sends SIGTERM, as systemd does, and waits for a clean exit.
func (d *Daemon) Stop() error {
	// ip netns exec replaces itself with the collector, so the signal
	// reaches it directly.
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-d.exited:
		if d.exitErr != nil {
			return fmt.Errorf("collector did not exit cleanly on SIGTERM: %w", d.exitErr)
		}
		return nil
	case <-time.After(stopTimeout):
		d.cmd.Process.Kill()
		return fmt.Errorf("collector did not exit within %v of SIGTERM", stopTimeout)
	}
}

// Kill ends the daemon with SIGKILL, as a crash or the OOM killer would:
// no drain, no flush, no detach. It returns once the process has ended.
func (d *Daemon) Kill() {
	d.cmd.Process.Kill()
	<-d.exited
}

// Pid is the daemon's process ID.
func (d *Daemon) Pid() int {
	return d.cmd.Process.Pid
}

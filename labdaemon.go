package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/back2basic/collector/lab"
)

// labDaemon is this very binary running as the daemon in a lab's host
// namespace: what the demo shows and what the end-to-end tests measure.
type labDaemon struct {
	cmd      *exec.Cmd
	attached chan struct{} // closed once every interface is counted
	exited   chan struct{} // closed when the process has ended
	exitErr  error         // how it ended; set before exited is closed
}

// attachedLine is the log message the daemon writes per interface once
// both programs are attached there.
const attachedLine = "msg=counting"

// attachTimeout bounds a start: loading and verifying the programs takes
// some 20 s on a guest under software emulation (make test-kernels).
const attachTimeout = 90 * time.Second

// startLabDaemon runs `bin run` with args in the host namespace of l,
// copying its output to out, and waits until it counts on l.HostIf. The
// settings come from args alone: no env file, no inherited environment.
func startLabDaemon(l *lab.Lab, bin string, out io.Writer, args ...string) (*labDaemon, error) {
	argv := append([]string{"netns", "exec", l.HostNS, bin, "run", "-config", os.DevNull, "-interface", l.HostIf}, args...)
	cmd := exec.Command("ip", argv...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start collector in %s: %w", l.HostNS, err)
	}
	d := &labDaemon{cmd: cmd, attached: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		seen := false
		for sc.Scan() {
			fmt.Fprintln(out, sc.Text())
			if !seen && strings.Contains(sc.Text(), attachedLine) {
				seen = true
				close(d.attached)
			}
		}
		d.exitErr = cmd.Wait()
		close(d.exited)
	}()

	select {
	case <-d.attached:
		return d, nil
	case <-d.exited:
		return nil, fmt.Errorf("collector exited before attaching: %v", d.exitErr)
	case <-time.After(attachTimeout):
		d.stop()
		return nil, fmt.Errorf("collector did not attach within %v", attachTimeout)
	}
}

// stop sends SIGTERM, as systemd does, and waits for a clean exit.
func (d *labDaemon) stop() error {
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
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		return errors.New("collector did not exit within 15s of SIGTERM")
	}
}

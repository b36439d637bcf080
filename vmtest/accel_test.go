// Package vmtest holds the tests of the VM scripts that choose how a
// guest runs; the scripts themselves are the package's content.
package vmtest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Stand-ins for qemu-system-x86_64, each acting out one way a machine's
// KVM behaves when accel.sh probes it. Each leaves a mark when run, so a
// test can tell whether the probe ran at all.
var fakeQEMU = map[string]string{
	// KVM that runs guests: the probe guest reaches its panic.
	"working": `serial=''
while [ $# -gt 0 ]; do [ "$1" = -serial ] && serial=${2#file:}; shift; done
echo 'Kernel panic - not syncing: VFS: Unable to mount root fs' >"$serial"`,
	// As seen on a 2-vCPU cloud VM without vmx but with /dev/kvm: qemu
	// says why on stderr, then sits with the guest stopped.
	"broken": `echo 'KVM internal error. Suberror: 1' >&2
echo 'emulation failure' >&2
exec sleep 60`,
	// A guest whose CPU never runs and a qemu that says nothing.
	"silent": `exec sleep 60`,
}

// fake writes the named stand-in into dir and returns its path and the
// path of the mark it leaves when run.
func fake(t *testing.T, dir, name string) (qemu, mark string) {
	t.Helper()
	qemu = filepath.Join(dir, "qemu-"+name)
	mark = qemu + ".ran"
	script := "#!/bin/bash\ntouch '" + mark + "'\n" + fakeQEMU[name] + "\n"
	if err := os.WriteFile(qemu, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return qemu, mark
}

// run runs script with env added to this process's environment and
// returns its stdout, stderr and exit status.
func run(t *testing.T, env []string, script string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	cmd := exec.Command(script, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		status = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", script, err)
	}
	return out.String(), errOut.String(), status
}

func TestAccelChoosesWhatWorks(t *testing.T) {
	dir := t.TempDir()
	device := filepath.Join(dir, "kvm")
	if err := os.WriteFile(device, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, qemu, vmAccel, device string
		want                        string
		probed                      bool
		why                         string // in the line on stderr; none when empty
	}{
		{name: "KVM runs the probe guest", qemu: "working", device: device, want: "kvm", probed: true},
		{name: "KVM stops the guest", qemu: "broken", device: device, want: "tcg", probed: true,
			why: "KVM cannot run a guest (qemu: KVM internal error. Suberror: 1): software emulation (tcg) instead"},
		{name: "the guest prints nothing", qemu: "silent", device: device, want: "tcg", probed: true,
			why: "KVM cannot run a guest (no console output in 2 s)"},
		{name: "no KVM device", qemu: "working", device: filepath.Join(dir, "none"), want: "tcg"},
		{name: "VM_ACCEL=tcg forces emulation", qemu: "working", vmAccel: "tcg", device: device, want: "tcg"},
		{name: "VM_ACCEL=kvm forces KVM", qemu: "broken", vmAccel: "kvm", device: device, want: "kvm"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			qemu, mark := fake(t, t.TempDir(), c.qemu)
			env := []string{"KVM_DEVICE=" + c.device, "QEMU=" + qemu, "PROBE_TIMEOUT=2", "VM_ACCEL=" + c.vmAccel}
			stdout, stderr, status := run(t, env, "./accel.sh", dir)
			if status != 0 || stdout != c.want+"\n" {
				t.Fatalf("accel.sh printed %q, exit %d (stderr %q); want %q, exit 0", stdout, status, stderr, c.want)
			}
			if _, err := os.Stat(mark); (err == nil) != c.probed {
				t.Errorf("probe ran: %v, want %v", err == nil, c.probed)
			}
			switch {
			case c.why == "" && stderr != "":
				t.Errorf("stderr %q, want nothing", stderr)
			case c.why != "" && (strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.why)):
				t.Errorf("stderr %q, want one line with %q", stderr, c.why)
			}
		})
	}
}

func TestAccelRefusesUnknownVMAccel(t *testing.T) {
	stdout, stderr, status := run(t, []string{"VM_ACCEL=hvf"}, "./accel.sh", t.TempDir())
	if status != 2 || stdout != "" || stderr != "accel: VM_ACCEL=hvf; accepted: kvm, tcg, or unset to probe\n" {
		t.Errorf("got %q, %q, exit %d; want the accepted values on stderr, exit 2", stdout, stderr, status)
	}
}

// A guest that prints nothing is reported as such after boot.sh's short
// silence limit (-q), not as a slow boot after the whole time limit (-t).
func TestBootReportsSilentGuest(t *testing.T) {
	dir := t.TempDir()
	qemu, mark := fake(t, dir, "silent")
	env := []string{"QEMU=" + qemu, "VM_ACCEL=kvm"}
	log := filepath.Join(dir, "console.log")
	_, stderr, status := run(t, env, "./boot.sh", "-k", dir, "-r", filepath.Join(dir, "root.img"),
		"-l", log, "-t", "600", "-q", "2")
	if _, err := os.Stat(mark); err != nil {
		t.Fatalf("boot.sh did not start qemu: %v (stderr %q)", err, stderr)
	}
	if status != 125 || stderr != "boot.sh: no console output in 2 s (kvm): accelerator?\n" {
		t.Errorf("boot.sh: exit %d, stderr %q; want exit 125 and the accelerator line", status, stderr)
	}
}

// Package kerneltest holds the guard every test that needs the kernel
// (loading BPF programs, building network namespaces) calls first.
package kerneltest

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// RequireRoot skips t with a reason when the process is not root, except in
// CI (CI set to a non-empty value), where a skipped kernel test would hide a
// regression and so fails instead.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	const why = "needs root to load BPF programs and build network namespaces"
	if os.Getenv("CI") != "" {
		tb.Fatalf("%s, and CI must not skip kernel tests", why)
	}
	tb.Skip(why + " (run: sudo make test)")
}

// MountBPFFS mounts a private bpffs in a temporary directory for the
// test's pins and unmounts it when the test ends, so no pin outlives it.
func MountBPFFS(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		tb.Fatalf("mount bpffs: %v", err)
	}
	tb.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

package kerneltest

import (
	"fmt"
	"testing"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// The suite runs on every kernel `make test-kernels` boots, from 5.10 on.
// What a kernel lacks is found here, by probing it, and a test that needs
// it skips with the reason, which names the kernel: a skip for the kernel
// is expected there, where a skip for want of root is not.

// HaveTCX reports whether the kernel has TCX (6.6+), from its BTF.
func HaveTCX() bool {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return false
	}
	var attachType *btf.Enum
	if err := spec.TypeByName("bpf_attach_type", &attachType); err != nil {
		return false
	}
	for _, v := range attachType.Values {
		if v.Name == "BPF_TCX_EGRESS" {
			return true
		}
	}
	return false
}

// RequireTCX skips tb on a kernel without TCX; the legacy TC tests cover
// such a kernel.
func RequireTCX(tb testing.TB) {
	tb.Helper()
	if !HaveTCX() {
		tb.Skipf("kernel %s has no TCX (6.6+); the legacy TC path is tested instead", Release())
	}
}

// AtLeast reports whether the running kernel is major.minor or newer.
func AtLeast(major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(Release(), "%d.%d", &ma, &mi); err != nil {
		return true
	}
	return ma > major || ma == major && mi >= minor
}

// Release is the running kernel's release, as uname -r prints it.
func Release() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

package kerneltest

import (
	"testing"

	"github.com/back2basic/collector/internal/kernel"
)

// The suite runs on every kernel `make test-kernels` boots, from 5.10 on.
// What a kernel lacks is found here, by probing it, and a test that needs
// it skips with the reason, which names the kernel: a skip for the kernel
// is expected there, where a skip for want of root is not.

// HaveTCX reports whether the kernel has TCX (6.6+), from its BTF.
func HaveTCX() bool {
	has, err := kernel.HasAttachType(kernel.VmlinuxBTF, "BPF_TCX_EGRESS")
	return err == nil && has
}

// RequireTCX skips tb on a kernel without TCX; the legacy TC tests cover
// such a kernel.
func RequireTCX(tb testing.TB) {
	tb.Helper()
	if !HaveTCX() {
		tb.Skipf("kernel %s has no TCX (6.6+); the legacy TC path is tested instead", Release())
	}
}

// AtLeast reports whether the running kernel is major.minor or newer;
// when the release cannot be read it says yes, so the test runs and shows
// what is wrong.
func AtLeast(major, minor int) bool {
	newer, err := kernel.AtLeast(Release(), major, minor)
	return newer || err != nil
}

// Release is the running kernel's release, as uname -r prints it.
func Release() string {
	release, err := kernel.Release()
	if err != nil {
		return "unknown"
	}
	return release
}

// Package kernel tells what the running kernel is and has: its release,
// whether that is at least a given version, and which attach types its
// BTF names. The datapath, `collector check` and the tests all ask here,
// so they cannot disagree about a kernel.
package kernel

import (
	"fmt"
	"os"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// VmlinuxBTF is where the kernel's own BTF is.
const VmlinuxBTF = "/sys/kernel/btf/vmlinux"

// Release is the running kernel's release, as uname -r prints it.
func Release() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// AtLeast reports whether release (uname -r, such as "6.1.0-18-amd64") is
// major.minor or newer.
func AtLeast(release string, major, minor int) (bool, error) {
	var ma, mi int
	if _, err := fmt.Sscanf(release, "%d.%d", &ma, &mi); err != nil {
		return false, fmt.Errorf("kernel release %q is not major.minor: %w", release, err)
	}
	return ma > major || ma == major && mi >= minor, nil
}

// HasAttachType reports whether the kernel whose BTF is at path names
// attachType (such as BPF_TCX_EGRESS) in its enum bpf_attach_type. Unlike
// a trial attach, reading BTF touches no interface.
func HasAttachType(path, attachType string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	spec, err := btf.LoadSpecFromReader(f)
	if err != nil {
		return false, fmt.Errorf("read kernel btf: %w", err)
	}
	var types *btf.Enum
	if err := spec.TypeByName("bpf_attach_type", &types); err != nil {
		return false, fmt.Errorf("read kernel btf: %w", err)
	}
	for _, v := range types.Values {
		if v.Name == attachType {
			return true, nil
		}
	}
	return false, nil
}

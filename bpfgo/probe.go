package bpfgo

import (
	"errors"
	"fmt"

	"github.com/back2basic/collector/internal/kernel"
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// ErrUnsupportedKernel is wrapped by Probe's error: the kernel lacks a
// feature the datapath cannot do without.
var ErrUnsupportedKernel = errors.New("kernel lacks a feature collector needs")

// kernelFeature is one thing the datapath needs from the kernel, with the
// release that brought it, so the refusal can say what to upgrade to.
type kernelFeature struct {
	name  string
	since string
	probe func() error
}

var kernelFeatures = []kernelFeature{
	{"hash maps", "3.19", func() error { return features.HaveMapType(ebpf.Hash) }},
	{"maps in maps", "4.12", func() error { return features.HaveMapType(ebpf.ArrayOfMaps) }},
	{"XDP programs", "4.8", func() error { return features.HaveProgramType(ebpf.XDP) }},
	{"TC programs", "4.1", func() error { return features.HaveProgramType(ebpf.SchedCLS) }},
	{"batch map operations", "5.6", haveBatchLookup},
	{"XDP links", "5.9", haveXDPLink},
}

// Probe checks that the kernel has what the datapath needs, without
// loading it: a missing feature is named, with the release that brought
// it. The oldest kernel the suite ran on is 5.10; these probes are what
// tells an older one apart, where the verifier's or the attach's own error
// would not say why.
func Probe() error {
	// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK, the probes'
	// and the pinned maps of an earlier run included: lift it before any
	// map is made. Best effort: collector.service filters setrlimit and
	// sets LimitMEMLOCK=infinity instead, newer kernels need neither, and
	// where it matters a map that cannot be made fails saying MEMLOCK may
	// be too low.
	_ = rlimit.RemoveMemlock()
	for _, f := range kernelFeatures {
		err := f.probe()
		if errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("%w: %s (Linux %s or newer)", ErrUnsupportedKernel, f.name, f.since)
		}
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("probe for %s: %w (%s)", f.name, err, permissionHint())
		}
		if err != nil {
			return fmt.Errorf("probe for %s: %w", f.name, err)
		}
	}
	return nil
}

// permissionHint says why the kernel may have refused a map or program
// with EPERM: on kernels before 5.11 a memlock limit that could not be
// lifted, else missing privileges.
func permissionHint() string {
	var lim unix.Rlimit
	if chargesMemlock() && unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim) == nil && lim.Cur != unix.RLIM_INFINITY {
		return fmt.Sprintf("this kernel charges BPF maps to RLIMIT_MEMLOCK, %d KiB here, which collector cannot raise itself: set LimitMEMLOCK=infinity, as collector.service does", lim.Cur/1024)
	}
	return "needs root, or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"
}

// haveBatchLookup tries one batch lookup on an empty map; Drain reads the
// counters that way.
func haveBatchLookup() error {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		return err
	}
	defer m.Close()
	var cursor ebpf.MapBatchCursor
	keys, values := make([]uint32, 1), make([]uint32, 1)
	_, err = m.BatchLookup(&cursor, keys, values, nil)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	return err
}

// haveXDPLink reads the kernel's BTF for the attach type of XDP links:
// unlike a trial attach it touches no interface. Without BTF it cannot
// tell, and the attach itself will say.
func haveXDPLink() error {
	has, err := kernel.HasAttachType(kernel.VmlinuxBTF, "BPF_XDP")
	if err != nil || has {
		return nil
	}
	return ebpf.ErrNotSupported
}

// chargesMemlock reports whether the kernel charges BPF maps to
// RLIMIT_MEMLOCK, as kernels before 5.11 do. (rlimit.RemoveMemlock cannot
// tell once it lacks the privileges to probe.)
func chargesMemlock() bool {
	release, err := kernel.Release()
	if err != nil {
		return false
	}
	newer, err := kernel.AtLeast(release, 5, 11)
	return err == nil && !newer
}

// Unrecoverable reports whether err, from Probe, Load or Attach, means
// the datapath can never start on this machine as configured, so that a
// restart would only fail again: the verifier refused a program, the
// kernel lacks a feature, or the process lacks the privileges (which a
// service keeps from one start to the next).
func Unrecoverable(err error) bool {
	var verr *ebpf.VerifierError
	return errors.As(err, &verr) ||
		errors.Is(err, ErrUnsupportedKernel) ||
		errors.Is(err, ebpf.ErrNotSupported) ||
		errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
}

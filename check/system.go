package check

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/back2basic/collector/bpfgo"
	"github.com/back2basic/collector/config"
	"github.com/back2basic/collector/internal/kernel"
)

// oldestTested is the oldest kernel `make test-kernels` boots and runs
// the suite on. An older one is judged by the feature probes alone.
var oldestTested = [2]int{5, 10}

const kernelFix = "upgrade the kernel: collector is tested on 5.10 (Debian 11), 6.1 (Debian 12), 6.12 (Debian 13) and newer"

// kernel reports the release and whether the kernel has every feature the
// datapath needs, found by probing it rather than from its version.
func (c *Checker) kernel() result {
	r := result{name: "kernel"}
	b, err := os.ReadFile(c.procPath("sys/kernel/osrelease"))
	if err != nil {
		r.status, r.detail, r.fix = fail, fmt.Sprintf("read kernel release: %v", err), "mount procfs on /proc"
		return r
	}
	release := strings.TrimSpace(string(b))
	probe := c.probe
	if probe == nil {
		probe = bpfgo.Probe
	}
	if err := probe(); err != nil {
		r.status, r.detail, r.fix = fail, fmt.Sprintf("%s: %s", release, oneLine(err)), kernelFix
		if !errors.Is(err, bpfgo.ErrUnsupportedKernel) {
			r.fix = capsFix
		}
		return r
	}
	tested, err := kernel.AtLeast(release, oldestTested[0], oldestTested[1])
	switch {
	case err != nil:
		r.status, r.detail, r.fix = warn, err.Error(), kernelFix
	case !tested:
		r.status, r.fix = warn, kernelFix
		r.detail = fmt.Sprintf("%s has every feature collector probes for, but is older than any kernel it was tested on (%d.%d)",
			release, oldestTested[0], oldestTested[1])
	default:
		r.detail = fmt.Sprintf("%s has every feature collector needs", release)
	}
	return r
}

// vmlinuxBTF is the kernel's own BTF, relative to sysfs.
const vmlinuxBTF = "kernel/btf/vmlinux"

// btf reports the kernel BTF. collector's programs use no CO-RE, so they
// load without it; only the TCX probe of TC_MODE=auto reads it.
func (c *Checker) btf() result {
	r := result{name: "btf"}
	path := c.sysPath(vmlinuxBTF)
	if _, err := os.Stat(path); err != nil {
		missing := err.Error()
		if errors.Is(err, fs.ErrNotExist) {
			missing = path + " is missing"
		}
		r.status = warn
		r.detail = missing + "; the programs do not need it, but check cannot tell whether the kernel has TCX"
		r.fix = "set TC_MODE=tcx (kernel 6.6+) or legacy, or use a kernel built with CONFIG_DEBUG_INFO_BTF=y"
		return r
	}
	r.detail = path + " present"
	return r
}

const bpffsFix = "mount -t bpf bpf /sys/fs/bpf (systemd mounts it at boot on most distributions)"

// bpffs reports whether sysfs' fs/bpf is a bpffs mount. Only pinning
// (PINNED_MAPS=1) needs one.
func (c *Checker) bpffs(pinned bool) result {
	r := result{name: "bpffs"}
	path := c.sysPath("fs/bpf")
	err := bpfgo.IsBPFFS(path)
	switch {
	case err == nil:
		r.detail = path + " is a bpffs mount"
		if !pinned {
			r.detail += "; used only with PINNED_MAPS=1"
		}
	case pinned:
		r.status, r.detail, r.fix = fail, err.Error()+"; PINNED_MAPS=1 needs it", bpffsFix
	default:
		r.status, r.detail = warn, err.Error()+"; needed only with PINNED_MAPS=1"
		r.fix = "before setting PINNED_MAPS=1: " + bpffsFix
	}
	return r
}

// pins reports what a previous run left in the pin directory. A start
// with PINNED_MAPS=1 reuses compatible pins; one without ignores them
// while they keep counting into maps nobody drains.
func pins(dir string, pinned bool) result {
	r := result{name: "pins"}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.detail = dir + ": no pins from a previous run"
		if pinned {
			r.detail += "; created at start"
		}
		return r
	case err != nil:
		r.status, r.detail = fail, fmt.Sprintf("read pin directory: %v", err)
		r.fix = "set PIN_PATH to a directory on a bpffs, such as " + bpfgo.DefaultPinPath
		return r
	}
	if err := bpfgo.IsBPFFS(dir); err != nil && pinned {
		r.status, r.detail = fail, err.Error()
		r.fix = bpffsFix + ", or set PIN_PATH to a directory on a bpffs"
		return r
	}
	if len(entries) == 0 {
		r.detail = dir + " exists and holds no pins"
		return r
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	r.detail = fmt.Sprintf("%s holds pins from a previous run: %s", dir, strings.Join(names, " "))
	if pinned {
		r.detail += "; the next start reuses compatible ones"
		return r
	}
	r.status = warn
	r.fix = "set PINNED_MAPS=1 to reuse them, or remove them with `collector detach`"
	return r
}

// requiredCaps are what loading and attaching XDP and TC programs needs
// on 5.8+ kernels. The kernel's bpf_capable() and perfmon_capable() also
// accept CAP_SYS_ADMIN in place of CAP_BPF and CAP_PERFMON.
var requiredCaps = []struct {
	bit      int
	name     string
	sysAdmin bool // CAP_SYS_ADMIN stands in for it
}{
	{unix.CAP_BPF, "CAP_BPF", true},
	{unix.CAP_NET_ADMIN, "CAP_NET_ADMIN", false},
	{unix.CAP_PERFMON, "CAP_PERFMON", true},
}

const capsFix = "run as root or give the service CAP_BPF CAP_NET_ADMIN CAP_PERFMON"

func (c *Checker) capabilities() result {
	eff, err := capEff(c.procPath("self/status"))
	if err != nil {
		return result{name: "capabilities", status: fail, detail: err.Error(), fix: capsFix}
	}
	return capabilities(eff)
}

// capEff returns the effective capability set from a /proc/PID/status
// file.
func capEff(path string) (uint64, error) {
	status, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read effective capabilities: %w", err)
	}
	for line := range strings.Lines(string(status)) {
		if v, found := strings.CutPrefix(line, "CapEff:"); found {
			eff, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: CapEff: %w", path, err)
			}
			return eff, nil
		}
	}
	return 0, fmt.Errorf("%s has no CapEff line", path)
}

// capabilities judges an effective capability set.
func capabilities(eff uint64) result {
	has := func(bit int) bool { return eff&(1<<bit) != 0 }
	var have, missing []string
	for _, cp := range requiredCaps {
		switch {
		case has(cp.bit):
			have = append(have, cp.name)
		case cp.sysAdmin && has(unix.CAP_SYS_ADMIN):
			have = append(have, cp.name+" (through CAP_SYS_ADMIN)")
		default:
			missing = append(missing, cp.name)
		}
	}
	if len(missing) > 0 {
		detail := "missing " + strings.Join(missing, " ")
		if len(have) > 0 {
			detail += "; has " + strings.Join(have, " ")
		}
		return result{name: "capabilities", status: fail, detail: detail, fix: capsFix}
	}
	detail := strings.Join(have, " ")
	if has(unix.CAP_SYS_ADMIN) {
		detail += ", and CAP_SYS_ADMIN"
	} else {
		// Turning a program ID into a descriptor needs CAP_SYS_ADMIN.
		detail += "; without CAP_SYS_ADMIN other tools' XDP programs are shown by id only"
	}
	return result{name: "capabilities", detail: detail}
}

// programs loads the datapath the way the daemon does, without pins, and
// closes it again: the verifier's verdict on this kernel, with nothing
// attached.
func (c *Checker) programs(cfg *config.Config) result {
	r := result{name: "programs"}
	load := c.load
	if load == nil {
		load = loadDatapath
	}
	counters, err := load(bpfgo.Config{Ports: cfg.Ports, MaxClients: cfg.MaxClients})
	if err == nil {
		err = counters.Close()
	}
	var verr *ebpf.VerifierError
	switch {
	case err == nil:
		r.detail = "load and pass the verifier (nothing attached)"
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		r.status, r.detail, r.fix = fail, oneLine(err), capsFix
	case errors.As(err, &verr):
		r.status, r.detail = fail, oneLine(err)
		r.fix = "this kernel's verifier rejects collector's programs: report it with `uname -r` and the verifier's log below"
		r.more = fmt.Sprintf("%+v", verr)
	default:
		r.status, r.detail = fail, oneLine(err)
		r.fix = "that is the kernel's reason; see the kernel and capabilities lines, or report it with `uname -r`"
	}
	return r
}

// loadDatapath is bpfgo.Load returning a plain io.Closer, so that a failed
// load is a nil interface, not a nil *Counters in one.
func loadDatapath(cfg bpfgo.Config) (io.Closer, error) {
	counters, err := bpfgo.Load(cfg)
	if err != nil {
		return nil, err
	}
	return counters, nil
}

const legacyTC = "legacy: a clsact qdisc with a cls_bpf filter"

// tcMode reports how the egress program would be attached.
func (c *Checker) tcMode(mode bpfgo.TCMode) result {
	r := result{name: "tc mode"}
	switch mode {
	case bpfgo.TCLegacy:
		r.detail = legacyTC + " (TC_MODE=legacy)"
		return r
	case bpfgo.TCX, bpfgo.TCAuto, "":
	default:
		r.status, r.detail, r.fix = fail, fmt.Sprintf("TC_MODE=%s is not a mode", mode), "set TC_MODE to auto, tcx or legacy"
		return r
	}
	has, err := haveTCX(c.sysPath(vmlinuxBTF))
	switch {
	case mode == bpfgo.TCX && err != nil:
		r.detail = fmt.Sprintf("tcx (TC_MODE=tcx); the start fails if the kernel has no TCX (6.6+): %v", err)
	case mode == bpfgo.TCX && !has:
		r.status, r.detail, r.fix = fail, "TC_MODE=tcx, but this kernel has no TCX (6.6+)", "set TC_MODE=auto or legacy"
	case mode == bpfgo.TCX:
		r.detail = "tcx (TC_MODE=tcx)"
	case err != nil:
		r.detail = fmt.Sprintf("tcx if the kernel has it, else %s (TC_MODE=auto; cannot tell: %v)", legacyTC, err)
	case has:
		r.detail = "tcx (TC_MODE=auto; the kernel has TCX)"
	default:
		r.detail = legacyTC + " (TC_MODE=auto; the kernel has no TCX, which came in 6.6)"
	}
	return r
}

// haveTCX reports whether the kernel whose BTF is at path has TCX: its
// enum bpf_attach_type then names BPF_TCX_EGRESS. Unlike a trial attach,
// reading BTF touches no interface.
func haveTCX(path string) (bool, error) {
	return kernel.HasAttachType(path, "BPF_TCX_EGRESS")
}

const databaseFix = "set SQLITE_PATH to a file in a writable directory (default /var/lib/collector/collector.db)"

// database reports whether the daemon can open path: create its directory
// if missing (store.Open does), and write the file and its WAL beside it.
func database(path string) result {
	detail, err := databaseWritable(path)
	if err != nil {
		return result{name: "database", status: fail, detail: err.Error(), fix: databaseFix}
	}
	return result{name: "database", detail: detail}
}

// databaseWritable proves path can be written by doing it: root passes
// every permission check, so modes say nothing. A temporary file is
// created and removed in the nearest existing directory, and an existing
// database is opened for writing. The database itself is never created.
func databaseWritable(path string) (string, error) {
	dir := filepath.Dir(path)
	parent, err := existingDir(dir)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(parent, ".collector-check-*")
	if err != nil {
		// The temporary name would only be noise.
		if pathErr := (*fs.PathError)(nil); errors.As(err, &pathErr) {
			err = pathErr.Err
		}
		return "", fmt.Errorf("cannot create files in %s: %w", parent, err)
	}
	if err := errors.Join(f.Close(), os.Remove(f.Name())); err != nil {
		return "", err
	}
	if parent != dir {
		return fmt.Sprintf("%s is created at start (%s is writable)", dir, parent), nil
	}
	f, err = os.OpenFile(path, os.O_WRONLY, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("%s is writable; %s is created at start", dir, filepath.Base(path)), nil
	case err != nil:
		return "", fmt.Errorf("cannot open %s for writing: %w", path, err)
	}
	return path + " exists and is writable", f.Close()
}

// existingDir returns dir, or its nearest ancestor when dir does not exist
// yet.
func existingDir(dir string) (string, error) {
	for {
		fi, err := os.Stat(dir)
		switch {
		case err == nil && fi.IsDir():
			return dir, nil
		case err == nil:
			return "", fmt.Errorf("%s is not a directory", dir)
		case !errors.Is(err, fs.ErrNotExist) || filepath.Dir(dir) == dir:
			return "", err
		}
		dir = filepath.Dir(dir)
	}
}

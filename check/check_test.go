package check

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/back2basic/collector/bpfgo"
	"github.com/back2basic/collector/config"
	"github.com/back2basic/collector/internal/testkit/golden"
)

// writeFiles writes files (path relative to root: contents) under root.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for rel, contents := range files {
		path := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(contents), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeBTF writes a kernel BTF blob at sysfs' kernel/btf/vmlinux under
// sys holding the one type the TCX probe reads.
func writeBTF(t *testing.T, sys string, tcx bool) {
	t.Helper()
	attach := &btf.Enum{Name: "bpf_attach_type", Size: 4, Values: []btf.EnumValue{
		{Name: "BPF_CGROUP_INET_INGRESS", Value: 0},
		{Name: "BPF_XDP", Value: 37},
	}}
	if tcx {
		attach.Values = append(attach.Values, btf.EnumValue{Name: "BPF_TCX_EGRESS", Value: 47})
	}
	b, err := btf.NewBuilder([]btf.Type{attach}, nil)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, sys, map[string]string{vmlinuxBTF: string(blob)})
}

// procStatus returns /proc/self/status contents with the given CapEff.
func procStatus(capEff string) string {
	return "Name:\tcollector\nCapInh:\t0000000000000000\nCapPrm:\t" + capEff + "\nCapEff:\t" + capEff + "\nCapBnd:\t000001ffffffffff\n"
}

// Effective capability sets: root's, and one with CAP_NET_ADMIN and
// CAP_NET_RAW only.
const (
	capsRoot     = "000001ffffffffff"
	capsNetAdmin = "0000000000003000"
)

func TestGolden(t *testing.T) {
	tests := []struct {
		name    string
		release string
		capEff  string
		tcx     *bool // nil: no kernel BTF
		// setup writes the rest of the fixture under root and returns
		// the configuration to check.
		setup   func(t *testing.T, root string) *config.Config
		probe   error
		load    error
		wantErr string
	}{
		{
			name: "ready", release: "6.1.0-18-amd64", capEff: capsRoot, tcx: new(true),
			setup: func(t *testing.T, root string) *config.Config {
				// The default route leads to lo, which every namespace has.
				writeFiles(t, root, map[string]string{"proc/net/route": "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\nlo\t00000000\t0100007F\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"})
				return &config.Config{
					SQLitePath: filepath.Join(root, "lib/collector/collector.db"),
					PinPath:    filepath.Join(root, "pins"),
					XDPMode:    bpfgo.XDPGeneric,
					TCMode:     bpfgo.TCAuto,
				}
			},
		},
		{
			name: "problems", release: "5.4.0-150-generic", capEff: capsNetAdmin,
			probe: fmt.Errorf("%w: batch map operations (Linux 5.6 or newer)", bpfgo.ErrUnsupportedKernel),
			setup: func(t *testing.T, root string) *config.Config {
				writeFiles(t, root, map[string]string{"pins/clients": "", "file": ""})
				return &config.Config{
					Interfaces: []string{"lo", "nosuch0"},
					SQLitePath: filepath.Join(root, "file/collector.db"),
					Pinned:     true,
					PinPath:    filepath.Join(root, "pins"),
					XDPMode:    bpfgo.XDPGeneric,
					TCMode:     bpfgo.TCLegacy,
				}
			},
			load:    fmt.Errorf("load bpf programs: %w", unix.EPERM),
			wantErr: "7 problems found",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			c := &Checker{
				Proc:  filepath.Join(root, "proc"),
				Sys:   filepath.Join(root, "sys"),
				probe: func() error { return tt.probe },
				load: func(bpfgo.Config) (io.Closer, error) {
					if tt.load != nil {
						return nil, tt.load
					}
					return io.NopCloser(nil), nil
				},
			}
			writeFiles(t, root, map[string]string{
				"proc/sys/kernel/osrelease": tt.release + "\n",
				"proc/self/status":          procStatus(tt.capEff),
			})
			if err := os.MkdirAll(filepath.Join(root, "sys/fs/bpf"), 0o755); err != nil {
				t.Fatal(err)
			}
			if tt.tcx != nil {
				writeBTF(t, c.Sys, *tt.tcx)
			}
			var out bytes.Buffer
			err := c.Run(context.Background(), tt.setup(t, root), &out)
			if got := errString(err); got != tt.wantErr {
				t.Errorf("Run returned %q, want %q", got, tt.wantErr)
			}
			golden.Check(t, tt.name, strings.ReplaceAll(out.String(), root, "$ROOT"))
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestMissingInterface(t *testing.T) {
	c := &Checker{
		probe: func() error { return nil },
		load:  func(bpfgo.Config) (io.Closer, error) { return io.NopCloser(nil), nil },
	}
	cfg := &config.Config{Interfaces: []string{"nosuch0"}, SQLitePath: filepath.Join(t.TempDir(), "collector.db")}
	var out bytes.Buffer
	err := c.Run(context.Background(), cfg, &out)
	if err == nil {
		t.Fatalf("a missing interface must be a problem; output:\n%s", &out)
	}
	for _, want := range []string{
		"FAIL  interface nosuch0",
		"no such network interface",
		"fix: `ip -br link` lists the interfaces; set INTERFACE",
		"interface nosuch0\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, &out)
		}
	}
}

func TestKernel(t *testing.T) {
	missing := fmt.Errorf("%w: XDP links (Linux 5.9 or newer)", bpfgo.ErrUnsupportedKernel)
	tests := []struct {
		release    string
		probe      error
		want       status
		wantDetail string
	}{
		{"5.10.0-32-cloud-amd64", nil, ok, "5.10.0-32-cloud-amd64 has every feature collector needs"},
		{"6.18.44-fc-v669", nil, ok, "6.18.44-fc-v669 has every feature collector needs"},
		{"10.0", nil, ok, "10.0 has every feature collector needs"},
		{"5.9.16", nil, warn, "5.9.16 has every feature collector probes for, but is older than any kernel it was tested on (5.10)"},
		{"5.8.0-63-generic", missing, fail, "5.8.0-63-generic: kernel lacks a feature collector needs: XDP links (Linux 5.9 or newer)"},
		{"6.1.0", fmt.Errorf("probe for hash maps: %w", unix.EPERM), fail, "6.1.0: probe for hash maps: operation not permitted"},
		{"linux", nil, warn, `kernel release "linux" is not major.minor: expected integer`},
	}
	for _, tt := range tests {
		t.Run(tt.release, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, map[string]string{"sys/kernel/osrelease": tt.release + "\n"})
			r := (&Checker{Proc: root, probe: func() error { return tt.probe }}).kernel()
			if r.status != tt.want || r.detail != tt.wantDetail {
				t.Errorf("kernel() = %v %q; want %v %q", r.status, r.detail, tt.want, tt.wantDetail)
			}
			if r.status != ok && r.fix == "" {
				t.Errorf("a %v says what to do", r.status)
			}
		})
	}
}

func TestCapabilities(t *testing.T) {
	tests := []struct {
		name       string
		status     string
		want       status
		wantDetail string
	}{
		{"root", procStatus(capsRoot), ok, "CAP_BPF CAP_NET_ADMIN CAP_PERFMON, and CAP_SYS_ADMIN"},
		{"service", procStatus("000000c000001000"), ok, "CAP_BPF CAP_NET_ADMIN CAP_PERFMON; without CAP_SYS_ADMIN"},
		{"no CAP_BPF", procStatus("0000004000001000"), fail, "missing CAP_BPF; has CAP_NET_ADMIN CAP_PERFMON"},
		{"nothing", procStatus("0000000000000000"), fail, "missing CAP_BPF CAP_NET_ADMIN CAP_PERFMON"},
		{"CAP_SYS_ADMIN stands in", procStatus("0000000000201000"), ok, "CAP_BPF (through CAP_SYS_ADMIN) CAP_NET_ADMIN"},
		{"no CapEff", "Name:\tcollector\n", fail, "has no CapEff line"},
		{"bad CapEff", "CapEff:\tzz\n", fail, "CapEff: strconv.ParseUint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc := t.TempDir()
			writeFiles(t, proc, map[string]string{"self/status": tt.status})
			r := (&Checker{Proc: proc}).capabilities()
			if r.status != tt.want || !strings.Contains(r.detail, tt.wantDetail) {
				t.Errorf("got %v %q, want %v containing %q", r.status, r.detail, tt.want, tt.wantDetail)
			}
			if (r.status == fail) != (r.fix != "") {
				t.Errorf("fix %q: every problem, and only a problem, says what to do", r.fix)
			}
		})
	}
}

func TestDatabase(t *testing.T) {
	tests := []struct {
		name string
		// path returns SQLITE_PATH, after making what it needs under dir.
		path       func(t *testing.T, dir string) string
		want       status
		wantDetail string
	}{
		{"new file", func(t *testing.T, dir string) string {
			return filepath.Join(dir, "collector.db")
		}, ok, "is writable; collector.db is created at start"},
		{"new directory", func(t *testing.T, dir string) string {
			return filepath.Join(dir, "a/b/collector.db")
		}, ok, "a/b is created at start"},
		{"existing file", func(t *testing.T, dir string) string {
			writeFiles(t, dir, map[string]string{"collector.db": "SQLite format 3\x00"})
			return filepath.Join(dir, "collector.db")
		}, ok, "collector.db exists and is writable"},
		{"under a regular file", func(t *testing.T, dir string) string {
			writeFiles(t, dir, map[string]string{"file": ""})
			return filepath.Join(dir, "file/sub/collector.db")
		}, fail, "not a directory"},
		{"a directory", func(t *testing.T, dir string) string {
			return dir
		}, fail, "is a directory"},
		// Not even root can create files in procfs.
		{"under /proc", func(*testing.T, string) string {
			return "/proc/collector.db"
		}, fail, "cannot create files in /proc: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tt.path(t, dir)
			before := tree(t, dir)
			r := database(path)
			if r.status != tt.want || !strings.Contains(r.detail, tt.wantDetail) {
				t.Errorf("got %v %q, want %v containing %q", r.status, r.detail, tt.want, tt.wantDetail)
			}
			if (r.status == fail) != (r.fix != "") {
				t.Errorf("fix %q: every problem, and only a problem, says what to do", r.fix)
			}
			if after := tree(t, dir); after != before {
				t.Errorf("the check left files behind: before %q, after %q", before, after)
			}
		})
	}
}

// tree lists every path under dir.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		paths = append(paths, path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(paths, " ")
}

func TestTCMode(t *testing.T) {
	tests := []struct {
		name       string
		mode       bpfgo.TCMode
		tcx        *bool // nil: no kernel BTF
		want       status
		wantDetail string
	}{
		{"forced tcx", bpfgo.TCX, new(true), ok, "tcx (TC_MODE=tcx)"},
		{"forced tcx without TCX", bpfgo.TCX, new(false), fail, "TC_MODE=tcx, but this kernel has no TCX"},
		{"forced tcx without BTF", bpfgo.TCX, nil, ok, "tcx (TC_MODE=tcx); the start fails if"},
		{"forced legacy", bpfgo.TCLegacy, new(true), ok, "legacy: a clsact qdisc with a cls_bpf filter (TC_MODE=legacy)"},
		{"auto with TCX", bpfgo.TCAuto, new(true), ok, "tcx (TC_MODE=auto; the kernel has TCX)"},
		{"auto without TCX", bpfgo.TCAuto, new(false), ok, "legacy: a clsact qdisc with a cls_bpf filter (TC_MODE=auto"},
		{"auto without BTF", bpfgo.TCAuto, nil, ok, "tcx if the kernel has it, else legacy"},
		{"unknown", "ebpf", nil, fail, "TC_MODE=ebpf is not a mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Checker{Sys: t.TempDir()}
			if tt.tcx != nil {
				writeBTF(t, c.Sys, *tt.tcx)
			}
			r := c.tcMode(tt.mode)
			if r.status != tt.want || !strings.Contains(r.detail, tt.wantDetail) {
				t.Errorf("got %v %q, want %v containing %q", r.status, r.detail, tt.want, tt.wantDetail)
			}
		})
	}
}

func TestXDPMode(t *testing.T) {
	const basic, sg = netdevXDPActBasic, netdevXDPActBasic | netdevXDPActRxSG
	tests := []struct {
		name       string
		mode       bpfgo.XDPMode
		mtu        int
		features   uint64
		err        error
		want       status
		wantDetail string
	}{
		{"forced generic", bpfgo.XDPGeneric, 1500, 0, nil, ok, "generic (XDP_MODE=generic; GRO is off"},
		{"forced tc", bpfgo.XDPViaTC, 1500, 0, nil, ok, "a TC ingress program counts (XDP_MODE=tc)"},
		{"forced native", bpfgo.XDPNative, 1500, basic, nil, ok, "native (XDP_MODE=native)"},
		{"forced native, no driver support", bpfgo.XDPNative, 1500, 0, nil, fail, "XDP_MODE=native, but the driver of eth0 has no native XDP"},
		{"forced native, jumbo without multi-buffer", bpfgo.XDPNative, 9000, basic, nil, warn, "at MTU 9000 it may refuse native mode"},
		{"forced native, features unknown", bpfgo.XDPNative, 1500, 0, errNoXDPFeatures, ok, "the start fails if the driver has none"},
		{"auto, driver support", bpfgo.XDPAuto, 1500, basic, nil, ok, "native (XDP_MODE=auto; the driver has native XDP)"},
		{"auto, jumbo with multi-buffer", bpfgo.XDPAuto, 9000, sg, nil, ok, "native (XDP_MODE=auto; the driver has native XDP)"},
		{"auto, jumbo without multi-buffer", bpfgo.XDPAuto, 9000, basic, nil, ok, "multi-buffer XDP: a TC ingress program counts then"},
		{"auto, no driver support", bpfgo.XDPAuto, 1500, 0, nil, ok, "none: a TC ingress program counts (XDP_MODE=auto; the driver has no native XDP"},
		{"auto, features unknown", bpfgo.XDPAuto, 1500, 0, errNoXDPFeatures, ok, "native if the driver supports it, else none: a TC ingress program counts"},
		{"unknown", "offload", 1500, 0, nil, fail, "XDP_MODE=offload is not a mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := xdpMode("eth0", tt.mode, tt.mtu, tt.features, tt.err)
			if r.status != tt.want || !strings.Contains(r.detail, tt.wantDetail) {
				t.Errorf("got %v %q, want %v containing %q", r.status, r.detail, tt.want, tt.wantDetail)
			}
			if (r.status == ok) != (r.fix == "") {
				t.Errorf("fix %q: every warning and problem, and nothing else, says what to do", r.fix)
			}
		})
	}
}

func TestLink(t *testing.T) {
	sys := t.TempDir()
	if err := os.MkdirAll(filepath.Join(sys, "class/net/eth9/device"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../bus/pci/drivers/ixgbe", filepath.Join(sys, "class/net/eth9/device/driver")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		ifc        net.Interface
		want       status
		wantDetail string
	}{
		{"up, virtual", net.Interface{Name: "veth0", MTU: 1500, Flags: net.FlagUp}, ok, "up, MTU 1500, driver virtual"},
		{"down, with a driver", net.Interface{Name: "eth9", MTU: 9000}, warn, "down, MTU 9000, driver ixgbe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := (&Checker{Sys: sys}).link(&tt.ifc)
			if r.status != tt.want || r.detail != tt.wantDetail {
				t.Errorf("got %v %q, want %v %q", r.status, r.detail, tt.want, tt.wantDetail)
			}
		})
	}
}

func TestXDPAttached(t *testing.T) {
	ours := xdpProg{id: 7, mode: "native", name: "xdp_count_frags"}
	other := xdpProg{id: 9, mode: "generic", name: "xdp_firewall"}
	unnamed := xdpProg{id: 11, mode: "native"}
	tests := []struct {
		name       string
		progs      []xdpProg
		err        error
		want       status
		wantDetail string
	}{
		{"none", nil, nil, ok, "no XDP program attached"},
		{"ours", []xdpProg{ours}, nil, ok, "ours (xdp_count_frags, id 7, native)"},
		{"another", []xdpProg{other}, nil, fail, "another XDP program (xdp_firewall, id 9) is attached to eth0; collector cannot attach there"},
		{"ours and another", []xdpProg{ours, other}, nil, fail, "another XDP program (xdp_firewall, id 9)"},
		{"unnamed", []xdpProg{unnamed}, nil, warn, "an XDP program (id 11, native) is attached to eth0; naming it needs CAP_SYS_ADMIN"},
		{"unreadable", nil, errors.New("netlink: operation not permitted"), warn, "cannot read the XDP programs attached"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := xdpAttached("eth0", tt.progs, tt.err)
			if r.status != tt.want || !strings.Contains(r.detail, tt.wantDetail) {
				t.Errorf("got %v %q, want %v containing %q", r.status, r.detail, tt.want, tt.wantDetail)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	report, problems := format([]result{
		{name: "kernel", detail: "6.1.0"},
		{name: "interface nosuch0", status: fail, detail: "gone", fix: "pick another"},
		{name: "programs", status: fail, detail: "refused", fix: "report it", more: "0: (b7) r0 = 0\n1: (95) exit"},
	})
	want := "" +
		"ok    kernel             6.1.0\n" +
		"FAIL  interface nosuch0  gone\n" +
		"                         fix: pick another\n" +
		"FAIL  programs           refused\n" +
		"                         fix: report it\n" +
		"                         | 0: (b7) r0 = 0\n" +
		"                         | 1: (95) exit\n" +
		"2 problems: interface nosuch0, programs\n"
	if report != want || problems != 2 {
		t.Errorf("got %d problems and\n%s\nwant 1 and\n%s", problems, report, want)
	}
}
